"""Offline metrics of a ranking model, and the choice between candidates, on arrays: no database, no globals.

Ranking is judged on raw scores (ROC AUC, NDCG@k over customers); calibration on the
probabilities a calibrator makes of them (log loss, Brier score, expected calibration error).
The champion is the candidate with the best validation ranking metric (`select_best`).

NDCG convention (the one LightGBM's lambdarank uses): gain 2^relevance - 1, discount
1 / log2(position + 1) with positions from 1, tied scores share the average gain of their
block (as scikit-learn's `ndcg_score` does), and each customer group is normalised by its
ideal DCG at the same cutoff. Groups with no relevant item have no ideal ranking; they are
left out of the mean and `n_groups` says how many counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clipped one float epsilon from 0 and 1 (as scikit-learn)."""
    y = np.asarray(labels, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between probability and outcome."""
    return float(np.mean((np.asarray(probabilities, dtype=np.float64) - np.asarray(labels)) ** 2))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> float:
    """Mean over equal-width probability bins of |mean probability - redemption rate|, weighted by rows.

    Bins are [0, 1/n), [1/n, 2/n), ..., with the last closed at 1.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=p, minlength=n_bins) - np.bincount(bins, weights=y, minlength=n_bins))
    # sum over bins of rows/n * |sum_p/rows - sum_y/rows| = sum over bins of |sum_p - sum_y| / n
    return float(gap[rows > 0].sum() / len(p))


def window_metrics(
    groups: np.ndarray,
    labels: np.ndarray,
    raw_scores: np.ndarray,
    ks: tuple[int, ...],
    probabilities: np.ndarray | None = None,
) -> list[dict[str, object]]:
    """The metric rows of one model on one window: ranking metrics of its raw scores, calibration of its probabilities.

    Rows have keys metric, k, value, n_rows, n_groups; the probability metrics (log_loss, brier,
    ece) come only when `probabilities` are given, with k and n_groups None.
    """
    rows = ranking_metrics(groups, labels, raw_scores, ks)
    if probabilities is not None:
        rows += [
            {"metric": name, "k": None, "value": metric(labels, probabilities), "n_rows": len(labels), "n_groups": None}
            for name, metric in (("log_loss", log_loss), ("brier", brier_score), ("ece", expected_calibration_error))
        ]
    return rows


TIE_TOLERANCE = 1e-12


def select_best(metrics: Mapping[str, Mapping[str, float]], primary: str, tiebreak: str) -> str:
    """The candidate with the highest `primary` metric; near-ties go to `tiebreak`, then to the name.

    `metrics` maps candidate name -> metric label (`metric_label`'s, such as 'ndcg@5') -> value;
    every candidate must report both metrics. Values within TIE_TOLERANCE tie; NaN is worst.
    """
    if not metrics:
        raise ValueError("there are no candidates to select from")
    candidates = sorted(metrics)
    for metric in (primary, tiebreak):
        candidates = _within_tolerance_of_best(candidates, {name: metrics[name][metric] for name in candidates})
    return candidates[0]


def _within_tolerance_of_best(candidates: list[str], values: Mapping[str, float]) -> list[str]:
    scores = {name: -math.inf if math.isnan(value) else value for name, value in values.items()}
    best = max(scores.values())
    return [name for name in candidates if scores[name] >= best - TIE_TOLERANCE]
