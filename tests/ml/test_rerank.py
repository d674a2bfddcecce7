"""MMR re-ranking under business rules, against a plain per-customer reference implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.rerank import DISCOUNT_BAND_EDGES, discount_band, mmr_rerank


def _offers(rows: list[tuple], customer_id: int = 1) -> pd.DataFrame:
    """Candidates of one customer from (offer_id, score, offer_category, is_own_brand, discount_depth, redeemed)."""
    frame = pd.DataFrame(
        rows, columns=["offer_id", "score", "offer_category", "is_own_brand", "discount_depth", "has_redeemed_offer"]
    )
    return frame.assign(customer_id=customer_id)


def _picked(frame: pd.DataFrame, **options: object) -> list[int]:
    options = {"top_k": 5, "mmr_lambda": 0.8, "max_per_category": 2, **options}
    return mmr_rerank(frame, **options)["offer_id"].tolist()


def _reference(frame: pd.DataFrame, top_k: int, mmr_lambda: float, max_per_category: int) -> pd.DataFrame:
    """MMR for one customer at a time, written the slow and obvious way."""
    frame = frame.assign(band=discount_band(frame["discount_depth"]))

    def similarity(a: dict, b: dict) -> float:
        return float(np.mean([a[key] == b[key] for key in ("offer_category", "is_own_brand", "band")]))

    rows = []
    for _, offers in frame.groupby("customer_id", sort=True):
        offers = offers.sort_values(["score", "offer_id"], ascending=[False, True])
        left = [row for row in offers.to_dict("records") if not row["has_redeemed_offer"]]
        picked: list[dict] = []
        while left and len(picked) < top_k:
            best, best_value = None, -np.inf
            for row in left:
                if sum(p["offer_category"] == row["offer_category"] for p in picked) >= max_per_category:
                    continue
                redundancy = max((similarity(row, p) for p in picked), default=0.0)
                value = mmr_lambda * row["score"] - (1 - mmr_lambda) * redundancy
                if value > best_value:  # strict: the earlier candidate in score order keeps a tie
                    best, best_value = row, value
            if best is None:
                break
            picked.append(best)
            left = [row for row in left if row["offer_id"] != best["offer_id"]]
        rows += [(p["customer_id"], p["offer_id"], rank) for rank, p in enumerate(picked, start=1)]
    return pd.DataFrame(rows, columns=["customer_id", "offer_id", "rank"])


def _random_candidates(customers: int, offers: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = customers * offers
    return pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(customers), offers),
            "offer_id": np.tile(np.arange(offers), customers),
            "score": rng.integers(0, 20, n) / 20,  # coarse, so that ties happen
            "offer_category": rng.choice(["bakery", "dairy", "drinks", "frozen"], n),
            "is_own_brand": rng.integers(0, 2, n),
            "discount_depth": rng.choice([0.05, 0.1, 0.15, 0.2, 0.3, 0.45], n),
            "has_redeemed_offer": rng.random(n) < 0.1,
        }
    )


def test_discount_bands_are_closed_below():
    depths = pd.Series([0.0, 0.0999, 0.10, 0.1999, 0.20, 0.30, 0.9, None])
    assert DISCOUNT_BAND_EDGES == (0.10, 0.20, 0.30)
    assert discount_band(depths).tolist() == [0, 0, 1, 1, 2, 3, 3, -1]


def test_lambda_one_is_score_order_with_ties_to_the_lower_offer_id():
    candidates = _random_candidates(customers=200, offers=12, seed=1).assign(has_redeemed_offer=False)
    reranked = mmr_rerank(candidates, top_k=5, mmr_lambda=1.0, max_per_category=12)
    expected = (
        candidates.sort_values(["customer_id", "score", "offer_id"], ascending=[True, False, True])
        .groupby("customer_id")
        .head(5)
    )
    assert reranked["offer_id"].tolist() == expected["offer_id"].tolist()
    assert reranked["customer_id"].tolist() == expected["customer_id"].tolist()
    assert reranked["rank"].tolist() == [1, 2, 3, 4, 5] * 200


def test_lambda_one_follows_score_rank_on_equal_scores():
    # equal calibrated scores (isotonic calibration makes such ties): offer_scores.rank decides
    frame = _offers([(1, 0.3, "a", 0, 0.1, False), (2, 0.3, "b", 0, 0.1, False)]).assign(score_rank=[2, 1])
    assert _picked(frame, mmr_lambda=1.0) == [2, 1]


def test_a_diverse_offer_beats_a_near_duplicate_below_lambda_one():
    frame = _offers(
        [
            (1, 0.50, "dairy", 1, 0.25, False),
            (2, 0.48, "dairy", 1, 0.22, False),  # the same category, brand kind and band as offer 1
            (3, 0.40, "drinks", 0, 0.05, False),  # nothing in common with offer 1
        ]
    )
    # λ = 0.8. Step 1 (nothing picked, no penalty): 0.8·0.50 = 0.400 > 0.8·0.48 = 0.384 > 0.8·0.40 = 0.320,
    # offer 1. Step 2: offer 2 has similarity 3/3 = 1 to offer 1, 0.384 - 0.2·1 = 0.184; offer 3 has
    # similarity 0, 0.320 - 0.2·0 = 0.320: offer 3. Step 3: offer 2, the only one left.
    assert _picked(frame, mmr_lambda=0.8) == [1, 3, 2]
    assert _picked(frame, mmr_lambda=1.0) == [1, 2, 3]
    # At λ = 0.95 the redundancy costs only 0.05: 0.95·0.48 - 0.05 = 0.406 > 0.95·0.40 = 0.380.
    assert _picked(frame, mmr_lambda=0.95) == [1, 2, 3]


def test_at_most_max_per_category_offers_share_a_category():
    frame = _offers(
        [(offer, 0.9 - offer / 100, "dairy", 0, 0.1, False) for offer in range(1, 5)]
        + [(9, 0.1, "bakery", 0, 0.1, False)]
    )
    assert _picked(frame, mmr_lambda=1.0, max_per_category=2, top_k=3) == [1, 2, 9]
    # with nothing else left, the cap leaves the list short
    assert _picked(frame, mmr_lambda=1.0, max_per_category=1, top_k=5) == [1, 9]


def test_redeemed_offers_are_never_recommended():
    frame = _offers(
        [(1, 0.9, "dairy", 0, 0.1, True), (2, 0.5, "dairy", 0, 0.1, False), (3, 0.4, "bakery", 0, 0.3, False)]
    )
    assert _picked(frame, mmr_lambda=1.0) == [2, 3]
    candidates = _random_candidates(customers=300, offers=10, seed=2)
    reranked = mmr_rerank(candidates, top_k=5, mmr_lambda=0.5, max_per_category=2)
    assert not reranked["has_redeemed_offer"].any()


def test_fewer_eligible_offers_than_k_give_fewer_rows():
    frame = pd.concat(
        [
            _offers([(1, 0.9, "dairy", 0, 0.1, True), (2, 0.5, "dairy", 0, 0.1, False)], customer_id=1),
            _offers([(1, 0.9, "dairy", 0, 0.1, True)], customer_id=2),  # nothing eligible: no rows
            _offers([(offer, 0.5, f"c{offer}", 0, 0.1, False) for offer in range(7)], customer_id=3),
        ]
    )
    reranked = mmr_rerank(frame, top_k=5, mmr_lambda=0.8, max_per_category=2)
    assert reranked.groupby("customer_id")["rank"].apply(list).to_dict() == {1: [1], 3: [1, 2, 3, 4, 5]}


def test_matches_the_reference_and_is_deterministic():
    candidates = _random_candidates(customers=150, offers=15, seed=3)
    for mmr_lambda, cap in ((0.0, 1), (0.3, 2), (0.8, 2), (1.0, 3)):
        reranked = mmr_rerank(candidates, top_k=5, mmr_lambda=mmr_lambda, max_per_category=cap)
        expected = _reference(candidates, 5, mmr_lambda, cap)
        pd.testing.assert_frame_equal(reranked[["customer_id", "offer_id", "rank"]], expected, check_dtype=False)
        per_category = reranked.groupby(["customer_id", "offer_category"]).size()
        assert per_category.max() <= cap
        shuffled = candidates.sample(frac=1, random_state=4)
        again = mmr_rerank(shuffled, top_k=5, mmr_lambda=mmr_lambda, max_per_category=cap)
        pd.testing.assert_frame_equal(again, reranked[again.columns])


def test_other_columns_are_carried_and_an_empty_frame_gives_no_rows():
    frame = _offers([(1, 0.9, "dairy", 0, 0.1, False)]).assign(model_id="m", rank=7)
    reranked = mmr_rerank(frame, top_k=5, mmr_lambda=0.8, max_per_category=2)
    assert reranked[["model_id", "rank"]].values.tolist() == [["m", 1]]
    assert mmr_rerank(frame.iloc[:0], top_k=5, mmr_lambda=0.8, max_per_category=2).empty


def test_rejects_bad_options():
    frame = _offers([(1, 0.9, "dairy", 0, 0.1, False)])
    with pytest.raises(ValueError, match="mmr_lambda"):
        mmr_rerank(frame, top_k=5, mmr_lambda=1.5, max_per_category=2)
    with pytest.raises(ValueError, match="max_per_category"):
        mmr_rerank(frame, top_k=5, mmr_lambda=0.5, max_per_category=0)
    with pytest.raises(KeyError, match="has_redeemed_offer"):
        mmr_rerank(frame.drop(columns="has_redeemed_offer"), top_k=5, mmr_lambda=0.5, max_per_category=2)
