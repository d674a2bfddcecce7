"""The per-list metrics agree with scikit-learn and with hand-worked lists."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

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


def _random_lists(seed: int, n_groups: int = 150):
    """Groups of 1..14 rows, untied scores, and each row's position by score."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_groups), rng.integers(1, 15, n_groups))
    labels = (rng.random(len(codes)) < 0.25).astype(int)
    scores = rng.permutation(len(codes)).astype(float)
    return codes, labels, scores, positions(codes, -scores)


def _per_group(codes, function):
    return np.array([function(codes == code) for code in range(codes.max() + 1)], dtype=float)


def test_positions_sort_by_the_keys_in_order_and_keep_row_order_for_full_ties():
    groups = np.array([7, 7, 7, 3, 3, 7])
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.2, 0.5])
    offer = np.array([2, 1, 1, 1, 1, 2])
    # group 7: 0.9 first, then the 0.5s by offer (offer 1 first), the two offer-2 rows in row order
    assert positions(groups, -score, offer).tolist() == [2, 0, 1, 1, 0, 3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn_per_group(seed):
    codes, labels, scores, order = _random_lists(seed)
    expected = _per_group(
        codes, lambda rows: average_precision_score(labels[rows], scores[rows]) if labels[rows].any() else np.nan
    )
    np.testing.assert_allclose(average_precision(codes, labels, order), expected, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_precision_and_recall_at_k_against_a_direct_count(k):
    codes, labels, _, order = _random_lists(3)

    def hits(rows):
        return labels[rows][order[rows] < k].sum()

    relevant = _per_group(codes, lambda rows: labels[rows].sum())
    expected_precision = np.where(relevant > 0, _per_group(codes, hits) / k, np.nan)
    expected_recall = np.where(relevant > 0, _per_group(codes, hits) / np.maximum(relevant, 1), np.nan)
    np.testing.assert_allclose(precision_at_k(codes, labels, order, k), expected_precision)
    np.testing.assert_allclose(recall_at_k(codes, labels, order, k), expected_recall)


def test_list_metrics_hand_worked_example():
    # Customer 0, in order: redeemed, not, redeemed, not. Customer 1: nothing redeemed.
    codes = np.array([0, 0, 0, 0, 1, 1])
    labels = np.array([1, 0, 1, 0, 0, 0])
    order = np.array([0, 1, 2, 3, 0, 1])
    # precision@3 = 2/3; @5 divides by 5 though the list has 4 rows; recall@1 = 1/2
    np.testing.assert_allclose(precision_at_k(codes, labels, order, 3), [2 / 3, np.nan])
    np.testing.assert_allclose(precision_at_k(codes, labels, order, 5), [2 / 5, np.nan])
    np.testing.assert_allclose(recall_at_k(codes, labels, order, 1), [1 / 2, np.nan])
    # AP = mean of precision at the redeemed rows' places: (1/1 + 2/3) / 2
    np.testing.assert_allclose(average_precision(codes, labels, order), [(1 + 2 / 3) / 2, np.nan])
    # NDCG@3 with binary gain: DCG = 1 + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3)
    (ndcg,) = ndcg_by_group(codes, labels, -order.astype(float), (3,))
    np.testing.assert_allclose(ndcg, [1.5 / (1 + 1 / np.log2(3)), np.nan])


@pytest.mark.parametrize("k", [1, 3, 10, None])
def test_ndcg_by_group_matches_sklearn_with_ties(k):
    rng = np.random.default_rng(4)
    codes, labels, _, _ = _random_lists(4)
    scores = np.round(rng.random(len(codes)), 1)  # many ties, which sklearn averages over
    expected = _per_group(
        codes,
        lambda rows: (
            (ndcg_score([labels[rows]], [scores[rows]], k=k) if rows.sum() > 1 else 1.0)
            if labels[rows].any()
            else np.nan
        ),
    )
    np.testing.assert_allclose(ndcg_by_group(codes, labels, scores, (k,))[0], expected, rtol=1e-12)


def _random_groups(seed: int, n_groups: int = 200, tie_decimals: int = 1):
    """Groups of 2..14 rows under sparse, unordered ids, with rounded (often tied) scores."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), rng.integers(2, 15, n_groups))
    labels = (rng.random(len(groups)) < 0.25).astype(int)
    # Rounded scores make many ties, which sklearn averages over; so must we.
    scores = np.round(rng.random(len(groups)), tie_decimals)
    return groups, labels, scores


def _mean_ndcg(groups, relevance, scores, k):
    """NDCG@k averaged over the groups where it is defined, and how many (as ml.evaluate reports it)."""
    (per_group,) = ndcg_by_group(group_codes(groups), relevance, scores, (k,))
    defined = per_group[~np.isnan(per_group)]
    return (float(defined.mean()) if len(defined) else float("nan")), len(defined)


def _sklearn_mean_ndcg(groups, relevance, scores, k):
    per_group = [
        ndcg_score([relevance[groups == g]], [scores[groups == g]], k=k)
        for g in np.unique(groups)
        if relevance[groups == g].sum() > 0
    ]
    return float(np.mean(per_group)), len(per_group)


@pytest.mark.parametrize("k", [1, 3, 10, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_mean_ndcg_matches_sklearn_with_ties(k, seed):
    groups, labels, scores = _random_groups(seed)
    expected, n_groups = _sklearn_mean_ndcg(groups, labels, scores, k)
    value, counted = _mean_ndcg(groups, labels, scores, k)
    assert value == pytest.approx(expected, rel=1e-12)
    assert counted == n_groups


def test_graded_ndcg_uses_exponential_gain():
    groups, _, scores = _random_groups(2, tie_decimals=3)
    relevance = np.random.default_rng(2).integers(0, 4, len(groups))
    # sklearn uses the relevance itself as gain; 2^rel - 1 passed as relevance gives our convention.
    expected, _ = _sklearn_mean_ndcg(groups, np.exp2(relevance) - 1, scores, 5)
    assert _mean_ndcg(groups, relevance, scores, 5)[0] == pytest.approx(expected, rel=1e-12)


def test_ndcg_hand_worked_example():
    # One customer, offers scored b > a > c, only c relevant: DCG = 1/log2(4) = 0.5, ideal DCG = 1.
    relevance, scores = np.array([0, 0, 1]), np.array([0.5, 0.9, 0.1])
    assert ndcg_by_group(np.zeros(3, dtype=int), relevance, scores, (10,))[0].tolist() == pytest.approx([0.5])
    # Cut off at 2, the relevant offer at position 3 earns nothing.
    assert ndcg_by_group(np.zeros(3, dtype=int), relevance, scores, (2,))[0].tolist() == [0.0]


def test_groups_without_relevant_items_are_left_out():
    assert _mean_ndcg(np.array([1, 1, 2, 2]), np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.5, 0.4]), 10) == (1.0, 1)
    value, counted = _mean_ndcg(np.array([1, 1]), np.array([0, 0]), np.array([0.2, 0.1]), 10)
    assert np.isnan(value) and counted == 0


def test_margin_at_k_sums_the_values_of_the_first_k():
    codes = np.array([0, 0, 0, 1])
    values = np.array([0.5, 0.0, 0.25, 0.0])  # label x kept margin
    order = np.array([2, 0, 1, 0])
    np.testing.assert_allclose(margin_at_k(codes, values, order, 1), [0.0, 0.0])
    np.testing.assert_allclose(margin_at_k(codes, values, order, 2), [0.25, 0.0])
    np.testing.assert_allclose(margin_at_k(codes, values, order, 3), [0.75, 0.0])


def test_diversity_hand_worked_example():
    # Customer 0's top 3: (cat a, own brand), (a, not own), (b, not own). Pairs share
    # 1 of 2 attributes (1-2), 0 of 2 (1-3), 1 of 2 (2-3): mean similarity 1/3, diversity 2/3.
    # Customer 1 has one row in its top 3: no pair, no diversity. The 4th row is beyond k.
    codes = np.array([0, 0, 0, 0, 1])
    category = np.array([0, 0, 1, 0, 0])
    brand = np.array([1, 0, 0, 0, 1])
    order = np.array([0, 1, 2, 3, 0])
    np.testing.assert_allclose(diversity_at_k(codes, [category, brand], order, 3), [2 / 3, np.nan])
    # Its top 2 share the category, not the brand kind: diversity 1/2.
    np.testing.assert_allclose(diversity_at_k(codes, [category, brand], order, 2)[0], 1 - 1 / 2)


def test_diversity_equals_mean_pairwise_dissimilarity_of_random_lists():
    rng = np.random.default_rng(5)
    codes, _, _, order = _random_lists(5)
    attributes = [rng.integers(0, 4, len(codes)), rng.integers(0, 2, len(codes)), rng.integers(-1, 3, len(codes))]

    def brute_force(rows):
        top = np.flatnonzero(rows & (order < 5))
        pairs = [(i, j) for n, i in enumerate(top) for j in top[n + 1 :]]
        if not pairs:
            return np.nan
        return np.mean([1 - np.mean([a[i] == a[j] for a in attributes]) for i, j in pairs])

    np.testing.assert_allclose(diversity_at_k(codes, attributes, order, 5), _per_group(codes, brute_force))


def test_coverage_counts_offers_in_at_least_one_top_k():
    items = np.array([10, 11, 12, 10, 13])
    order = np.array([0, 1, 2, 1, 0])
    assert coverage_at_k(items, order, 1) == 2 / 4  # 10 and 13
    assert coverage_at_k(items, order, 2) == 3 / 4  # and 11
    assert coverage_at_k(items, order, 3) == 1.0
    assert np.isnan(coverage_at_k(np.array([]), np.array([], dtype=int), 3))


def test_group_codes_are_dense_in_order_of_appearance():
    assert group_codes(np.array([42, 7, 42, 9])).tolist() == [0, 1, 0, 2]
