"""Offline metrics of a ranking, on arrays: no database, no globals.

NDCG convention (the one LightGBM's lambdarank uses): gain 2^relevance - 1, discount
1 / log2(position + 1) with positions from 1, tied scores share the average gain of their
block (as scikit-learn's `ndcg_score` does), and each customer group is normalised by its
ideal DCG at the same cutoff. Groups with no relevant item have no ideal ranking; they are
left out of the mean and `n_groups` says how many counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class GroupedMetric:
    value: float
    n_groups: int


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def _discounts(positions: np.ndarray, k: int | None) -> np.ndarray:
    discounts = 1.0 / np.log2(positions + 2.0)
    if k is not None:
        discounts[positions >= k] = 0.0
    return discounts


def _dcg_by_group(frame: pd.DataFrame, sort_column: str, k: int | None, tie_average: bool) -> pd.Series:
    ordered = frame.sort_values(["group", sort_column], ascending=[True, False], kind="mergesort")
    positions = ordered.groupby("group", sort=False).cumcount().to_numpy()
    ordered = ordered.assign(discount=_discounts(positions, k))
    if not tie_average:
        return (ordered["gain"] * ordered["discount"]).groupby(ordered["group"]).sum()
    blocks = ordered.groupby(["group", sort_column], sort=False).agg(
        gain=("gain", "mean"), discount=("discount", "sum")
    )
    return (blocks["gain"] * blocks["discount"]).groupby(level="group").sum()


def ndcg_at_k(groups: np.ndarray, relevance: np.ndarray, scores: np.ndarray, k: int | None) -> GroupedMetric:
    """Mean NDCG@k over groups (customers) that have at least one relevant item."""
    frame = pd.DataFrame(
        {
            "group": np.asarray(groups),
            "score": np.asarray(scores, dtype=float),
            "relevance": np.asarray(relevance, dtype=float),
        }
    )
    frame["gain"] = np.exp2(frame["relevance"]) - 1.0
    relevant_groups = frame.loc[frame["gain"] > 0, "group"].unique()
    frame = frame[frame["group"].isin(relevant_groups)]
    if frame.empty:
        return GroupedMetric(float("nan"), 0)
    dcg = _dcg_by_group(frame, "score", k, tie_average=True)
    ideal = _dcg_by_group(frame, "relevance", k, tie_average=False)
    return GroupedMetric(float((dcg / ideal).mean()), len(ideal))


def metric_label(metric: str, k: object) -> str:
    """How a metric is named in summaries and the registry: `roc_auc`, `ndcg@10`."""
    return metric if k is None or pd.isna(k) else f"{metric}@{int(k)}"


def ranking_metrics(
    groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, ks: tuple[int, ...]
) -> list[dict[str, object]]:
    """The metric rows offerrank reports for one set of predictions: ROC AUC and NDCG@k per k."""
    n_rows = len(labels)
    rows: list[dict[str, object]] = [
        {"metric": "roc_auc", "k": None, "value": roc_auc(labels, scores), "n_rows": n_rows, "n_groups": None}
    ]
    for k in ks:
        ndcg = ndcg_at_k(groups, labels, scores, k)
        rows.append({"metric": "ndcg", "k": k, "value": ndcg.value, "n_rows": n_rows, "n_groups": ndcg.n_groups})
    return rows
