"""The metrics offerrank reports agree with scikit-learn's reference implementations."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from ml.evaluate import ndcg_at_k, ranking_metrics, roc_auc


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
