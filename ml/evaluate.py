"""Offline metrics of a ranking model, and the choice between candidates, on arrays: no database, no globals.

Ranking is judged on raw scores (ROC AUC, and the list metrics over customers in `ml.list_metrics`:
NDCG@k, precision/recall@k, MAP, margin@k, diversity@k and coverage@k); calibration
on the probabilities a calibrator makes of them (log loss, Brier score, expected calibration
error). `scorer_metrics` gives all of them for one scorer on an `EvalWindow`, overall and per
customer segment, for the raw order and for the lists as served (MMR re-ranked under the business
rules); `with_margin_lift` compares margins with the heuristic's. The champion is the candidate
with the best validation ranking metric on segment 'all', raw order (`select_best`).

NDCG convention (the one LightGBM's lambdarank uses, code in `ml.list_metrics`): gain
2^relevance - 1, discount 1 / log2(position + 1) with positions from 1, tied scores share the
average gain of their block (as scikit-learn's `ndcg_score` does), and each customer group is
normalised by its ideal DCG at the same cutoff. Groups with no relevant item have no ideal
ranking; they are left out of the mean and `n_groups` says how many counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml import rerank
from ml.config import RerankConfig
from ml.list_metrics import (
    average_precision,
    coverage_at_k,
    diversity_at_k,
    group_codes,
    margin_at_k,
    ndcg_by_group,
    positions,
    precision_at_k,
    recall_at_k,
)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def metric_label(metric: str, k: object) -> str:
    """How a metric is named in summaries and the registry: `roc_auc`, `ndcg@10`."""
    return metric if k is None or pd.isna(k) else f"{metric}@{int(k)}"


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


CALIBRATION_METRICS = (("log_loss", log_loss), ("brier", brier_score), ("ece", expected_calibration_error))


# --- every scorer on one window: segments, raw and served order -------------------------------------


MARGIN_IMPACT = "margin_impact"  # the share of an offer's normal gross margin a redemption gives up


@dataclass(frozen=True)
class Predictions:
    """One scorer's output on the rows of an evaluation window."""

    raw_scores: np.ndarray  # the ranking, higher first
    probabilities: np.ndarray | None  # calibrated; None for a scorer that gives none (the heuristic)
    serving_scores: np.ndarray  # what re-ranking weighs against similarity: ml.offer_scores.score


@dataclass(frozen=True)
class EvalWindow:
    """The labelled rows every scorer is judged on, and what the list metrics need of them.

    Each customer's rows over the whole window are one list (a customer shown the same offer on
    two days has it twice), as the ranking metrics have always grouped them.
    """

    groups: np.ndarray  # customer_id as dense codes 0..G-1 (list_metrics.group_codes)
    labels: np.ndarray
    items: np.ndarray  # offer_id
    margin: np.ndarray | None  # per row, the margin its redemption kept: label x (1 - margin_impact)
    candidates: pd.DataFrame  # customer_id, offer_id and the similarity attributes: the re-ranker's input
    similarity: list[np.ndarray]  # rerank.similarity_codes of the rows
    segments: dict[str, np.ndarray]  # 'all', then '<column>=<value>': the segment's rows
    segment_groups: dict[str, np.ndarray]  # the segment's customers, as a mask over the codes

    @classmethod
    def from_examples(cls, examples: pd.DataFrame, segment_columns: tuple[str, ...]) -> EvalWindow:
        """The window of labelled examples with customer_id, offer_id, label and offer_category;
        is_own_brand, discount_depth, margin_impact and the segment columns where present (a
        segment column must be a customer attribute; rows where it is null are in 'all' only)."""
        attributes = [name for name in rerank.SIMILARITY_ATTRIBUTES if name in examples.columns]
        candidates = examples[["customer_id", "offer_id", *attributes]].reset_index(drop=True)
        labels = examples["label"].to_numpy()
        margin = (
            labels * (1.0 - examples[MARGIN_IMPACT].astype(float).fillna(0.0).to_numpy())
            if MARGIN_IMPACT in examples.columns
            else None
        )
        segments = {"all": np.ones(len(examples), dtype=bool)}
        for column in (name for name in segment_columns if name in examples.columns):
            for value in sorted(examples[column].dropna().unique()):
                segments[f"{column}={value}"] = (examples[column] == value).to_numpy()
        groups = group_codes(examples["customer_id"].to_numpy())
        return cls(
            groups=groups,
            labels=labels,
            items=examples["offer_id"].to_numpy(),
            margin=margin,
            candidates=candidates,
            similarity=rerank.similarity_codes(candidates),
            segments=segments,
            segment_groups={
                name: np.bincount(groups[mask], minlength=groups.max() + 1) > 0 for name, mask in segments.items()
            },
        )


def served_positions(
    window: EvalWindow, serving_scores: np.ndarray, raw_positions: np.ndarray, depth: int, options: RerankConfig
) -> np.ndarray:
    """Each row's 0-based position in its customer's list as served: the first `depth` places as
    MMR re-ranking under the per-category cap fills them (ml/rerank.py, as the recommendations
    stage does), then the rows it did not pick, in raw score order.

    The redeemed-offer rule is not applied: an impression does not say whether the customer had
    redeemed the offer before it was shown.
    """
    candidates = window.candidates.assign(
        score=serving_scores, score_rank=raw_positions + 1, has_redeemed_offer=False, row=np.arange(len(raw_positions))
    )
    picked = rerank.mmr_rerank(
        candidates, top_k=depth, mmr_lambda=options.mmr_lambda, max_per_category=options.max_per_category
    )
    key = raw_positions + depth
    key[picked["row"].to_numpy()] = picked["rank"].to_numpy() - 1
    return positions(window.groups, key)


def _row(
    segment: str, ordering: str, metric: str, k: int | None, value: float, n_rows: int, n_groups: int | None
) -> dict[str, object]:
    return {
        "segment": segment,
        "ordering": ordering,
        "metric": metric,
        "k": k,
        "value": value,
        "n_rows": n_rows,
        "n_groups": n_groups,
    }


def _order_free_rows(window: EvalWindow, predictions: Predictions) -> list[dict[str, object]]:
    """ROC AUC and the calibration metrics: they do not depend on the order of a list, so 'raw' only."""
    rows = []
    for segment, mask in window.segments.items():
        labels, n_rows = window.labels[mask], int(mask.sum())
        rows.append(_row(segment, "raw", "roc_auc", None, roc_auc(labels, predictions.raw_scores[mask]), n_rows, None))
        if predictions.probabilities is not None:
            probabilities = predictions.probabilities[mask]
            rows += [
                _row(segment, "raw", name, None, metric(labels, probabilities), n_rows, None)
                for name, metric in CALIBRATION_METRICS
            ]
    return rows


def _per_customer(
    window: EvalWindow, order: np.ndarray, ndcg_scores: np.ndarray, ks: tuple[int, ...]
) -> dict[tuple[str, int | None], np.ndarray]:
    """Every per-customer list metric of one ordering, by (metric, k)."""
    groups, labels = window.groups, window.labels
    metrics = {("map", None): average_precision(groups, labels, order)}
    metrics.update(
        {("ndcg", k): ndcg for k, ndcg in zip(ks, ndcg_by_group(groups, labels, ndcg_scores, ks), strict=True)}
    )
    for k in ks:
        metrics["precision", k] = precision_at_k(groups, labels, order, k)
        metrics["recall", k] = recall_at_k(groups, labels, order, k)
        metrics["diversity", k] = diversity_at_k(groups, window.similarity, order, k)
        if window.margin is not None:
            metrics["margin", k] = margin_at_k(groups, window.margin, order, k)
    return metrics


def _list_rows(
    window: EvalWindow, ordering: str, order: np.ndarray, ndcg_scores: np.ndarray, ks: tuple[int, ...]
) -> list[dict[str, object]]:
    """The list metrics of one ordering in every segment: per-customer values averaged over the
    segment's customers where defined, and catalog coverage."""
    per_customer = _per_customer(window, order, ndcg_scores, ks)
    rows = []
    for segment, mask in window.segments.items():
        n_rows, customers = int(mask.sum()), window.segment_groups[segment]
        for (metric, k), values in per_customer.items():
            defined = values[customers & ~np.isnan(values)]
            mean = float(defined.mean()) if len(defined) else float("nan")
            rows.append(_row(segment, ordering, metric, k, mean, n_rows, len(defined)))
        rows += [
            _row(segment, ordering, "coverage", k, coverage_at_k(window.items[mask], order[mask], k), n_rows, None)
            for k in ks
        ]
    return rows


def scorer_metrics(
    window: EvalWindow, predictions: Predictions, ks: tuple[int, ...], options: RerankConfig
) -> list[dict[str, object]]:
    """One scorer's metric rows (segment, ordering, metric, k, value, n_rows, n_groups) on `window`:
    the order-free metrics on its raw scores, the list metrics in its raw order and as served."""
    raw = predictions.raw_scores
    # Ties go to the lower offer_id, as ml.offer_scores.rank breaks them.
    raw_order = positions(window.groups, -raw, window.items)
    served_order = served_positions(window, predictions.serving_scores, raw_order, max(ks), options)
    # NDCG of the raw order keeps its tie-averaging; the served order has no ties.
    return [
        *_order_free_rows(window, predictions),
        *_list_rows(window, "raw", raw_order, raw, ks),
        *_list_rows(window, "served", served_order, -served_order.astype(float), ks),
    ]


def with_margin_lift(results: dict[str, list[dict[str, object]]], baseline: str) -> dict[str, list[dict[str, object]]]:
    """`results` with a `margin_lift` row beside each `margin` row: the scorer's margin over the
    `baseline` scorer's in the same segment, ordering and k, minus 1 (NaN when the baseline's is 0).
    Unchanged when the baseline was not scored."""
    if baseline not in results:
        return results

    def key(row: dict[str, object]) -> tuple[object, ...]:
        return row["segment"], row["ordering"], row["k"]

    base = {key(row): row["value"] for row in results[baseline] if row["metric"] == "margin"}

    def lift(row: dict[str, object]) -> dict[str, object]:
        reference = base[key(row)]
        value = row["value"] / reference - 1.0 if reference > 0 else float("nan")
        return {**row, "metric": "margin_lift", "value": value}

    return {name: rows + [lift(row) for row in rows if row["metric"] == "margin"] for name, rows in results.items()}


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
