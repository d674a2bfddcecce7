"""The metrics offerrank reports agree with scikit-learn's reference implementations."""

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, ndcg_score, roc_auc_score
from sklearn.metrics import log_loss as sklearn_log_loss

from ml.evaluate import (
    brier_score,
    expected_calibration_error,
    log_loss,
    ndcg_at_k,
    ranking_metrics,
    roc_auc,
    select_best,
    window_metrics,
)


def _random_groups(seed: int, n_groups: int = 200, tie_decimals: int = 1):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), rng.integers(2, 15, n_groups))
    labels = (rng.random(len(groups)) < 0.25).astype(int)
    # Rounded scores make many ties, which sklearn averages over; so must we.
    scores = np.round(rng.random(len(groups)), tie_decimals)
    return groups, labels, scores


def _sklearn_mean_ndcg(groups, relevance, scores, k):
    per_group = [
        ndcg_score([relevance[groups == g]], [scores[groups == g]], k=k)
        for g in np.unique(groups)
        if relevance[groups == g].sum() > 0
    ]
    return float(np.mean(per_group)), len(per_group)


@pytest.mark.parametrize("k", [1, 3, 10, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_ndcg_matches_sklearn_with_ties(k, seed):
    groups, labels, scores = _random_groups(seed)
    expected, n_groups = _sklearn_mean_ndcg(groups, labels, scores, k)
    result = ndcg_at_k(groups, labels, scores, k)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.n_groups == n_groups


def test_graded_ndcg_uses_exponential_gain():
    groups, _, scores = _random_groups(2, tie_decimals=3)
    relevance = np.random.default_rng(2).integers(0, 4, len(groups))
    # sklearn uses the relevance itself as gain; 2^rel - 1 passed as relevance gives our convention.
    expected, _ = _sklearn_mean_ndcg(groups, np.exp2(relevance) - 1, scores, 5)
    assert ndcg_at_k(groups, relevance, scores, 5).value == pytest.approx(expected, rel=1e-12)


def test_ndcg_hand_worked_example():
    # One customer, offers scored b > a > c, only c relevant: DCG = 1/log2(4) = 0.5, ideal DCG = 1.
    assert ndcg_at_k(np.zeros(3), np.array([0, 0, 1]), np.array([0.5, 0.9, 0.1]), 10).value == pytest.approx(0.5)
    # Cut off at 2, the relevant offer at position 3 earns nothing.
    assert ndcg_at_k(np.zeros(3), np.array([0, 0, 1]), np.array([0.5, 0.9, 0.1]), 2).value == 0.0


def test_groups_without_relevant_items_are_left_out():
    result = ndcg_at_k(np.array([1, 1, 2, 2]), np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.5, 0.4]), 10)
    assert result.value == 1.0
    assert result.n_groups == 1
    assert np.isnan(ndcg_at_k(np.array([1, 1]), np.array([0, 0]), np.array([0.2, 0.1]), 10).value)


def test_auc_matches_sklearn_and_is_nan_for_one_class():
    _groups, labels, scores = _random_groups(3)
    assert roc_auc(labels, scores) == roc_auc_score(labels, scores)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))


def test_ranking_metrics_rows():
    groups, labels, scores = _random_groups(4)
    rows = ranking_metrics(groups, labels, scores, (5, 10))
    assert [(r["metric"], r["k"]) for r in rows] == [("roc_auc", None), ("ndcg", 5), ("ndcg", 10)]
    assert all(r["n_rows"] == len(labels) for r in rows)


def _probabilities(seed: int, n: int = 2000):
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(1, 4, n)
    labels = (rng.random(n) < probabilities * 1.2).astype(int)  # slightly under-confident
    return labels, probabilities


def test_log_loss_and_brier_match_sklearn():
    labels, probabilities = _probabilities(0)
    assert log_loss(labels, probabilities) == pytest.approx(sklearn_log_loss(labels, probabilities), rel=1e-12)
    assert brier_score(labels, probabilities) == pytest.approx(brier_score_loss(labels, probabilities), rel=1e-12)
    # certain and wrong: clipped, finite, as scikit-learn
    extreme = np.array([0.0, 1.0])
    assert log_loss(np.array([1, 0]), extreme) == pytest.approx(sklearn_log_loss([1, 0], extreme, labels=[0, 1]))


def test_ece_matches_the_weighted_gaps_of_sklearns_calibration_curve():
    labels, probabilities = _probabilities(1)
    rate, mean_probability = calibration_curve(labels, probabilities, n_bins=10, strategy="uniform")
    occupied = np.bincount(np.minimum((probabilities * 10).astype(int), 9), minlength=10)
    weights = occupied[occupied > 0] / len(labels)
    expected = float(np.sum(weights * np.abs(mean_probability - rate)))
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected, rel=1e-12)


def test_ece_hand_worked_example():
    # bin [0.1, 0.2): p 0.1, 0.1, y 0, 1 -> gap 0.4, weight 1/2; bin [0.9, 1]: p 1.0, 0.9, y 1, 1 -> gap 0.05
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(labels, np.array([0.1, 0.1, 1.0, 0.9])) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)


def test_window_metrics_adds_calibration_rows_when_probabilities_are_given():
    groups, labels, scores = _random_groups(5)
    assert window_metrics(groups, labels, scores, (5,)) == ranking_metrics(groups, labels, scores, (5,))
    rows = window_metrics(groups, labels, scores, (5, 10), probabilities=np.clip(scores, 0.01, 0.99))
    assert [(r["metric"], r["k"]) for r in rows] == [
        ("roc_auc", None),
        ("ndcg", 5),
        ("ndcg", 10),
        ("log_loss", None),
        ("brier", None),
        ("ece", None),
    ]
    assert all(r["n_rows"] == len(labels) for r in rows)
    assert all(r["n_groups"] is None for r in rows[3:])


def test_select_best_takes_the_primary_metric_then_the_tiebreak_then_the_name():
    metrics = {
        "logreg": {"ndcg@5": 0.60, "roc_auc": 0.80},
        "lgbm_binary": {"ndcg@5": 0.62, "roc_auc": 0.70},
        "lgbm_lambdarank": {"ndcg@5": 0.62 + 1e-13, "roc_auc": 0.75},
    }
    assert select_best(metrics, "ndcg@5", "roc_auc") == "lgbm_lambdarank"  # ndcg tied within 1e-12
    assert select_best(metrics, "roc_auc", "ndcg@5") == "logreg"
    tied = {name: {"ndcg@5": 0.5, "roc_auc": 0.7} for name in ("b_model", "a_model")}
    assert select_best(tied, "ndcg@5", "roc_auc") == "a_model"


def test_select_best_counts_nan_as_worst():
    metrics = {"a": {"ndcg@5": math.nan, "roc_auc": 0.9}, "b": {"ndcg@5": 0.1, "roc_auc": 0.5}}
    assert select_best(metrics, "ndcg@5", "roc_auc") == "b"
    all_nan = {"a": {"ndcg@5": math.nan, "roc_auc": 0.5}, "b": {"ndcg@5": math.nan, "roc_auc": 0.6}}
    assert select_best(all_nan, "ndcg@5", "roc_auc") == "b"
    with pytest.raises(ValueError, match="no candidates"):
        select_best({}, "ndcg@5", "roc_auc")
