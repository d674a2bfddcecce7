import numpy as np
import pandas as pd

from ml.pipeline import customer_chunks
from ml.score import rank_within_customer, score_frame


def test_rank_within_customer_orders_by_score_then_offer():
    customers = np.array([2, 1, 1, 2, 1, 2])
    offers = np.array([10, 10, 11, 11, 12, 12])
    scores = np.array([0.1, 0.5, 0.9, 0.1, 0.5, 0.7])
    # customer 1: 11 (0.9), then 10 and 12 tie at 0.5 -> lower offer id first
    # customer 2: 12 (0.7), then 10 and 11 tie at 0.1
    assert rank_within_customer(customers, offers, scores).tolist() == [2, 2, 1, 3, 3, 1]


def test_score_frame_ranks_are_a_permutation_per_customer():
    rng = np.random.default_rng(0)
    n = 5000
    candidates = pd.DataFrame(
        {"as_of_date": "2026-06-30", "customer_id": rng.integers(0, 300, n), "offer_id": rng.permutation(n)}
    )
    raw = rng.normal(size=n)
    # a calibration with ties (isotonic steps): the ranks still follow the raw score
    frame = score_frame(candidates, raw, np.round(1 / (1 + np.exp(-raw)), 1), "m1", ranked_by="model")
    assert set(frame["ranked_by"]) == {"model"}
    for _, group in frame.groupby("customer_id"):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1))
        assert group.sort_values("rank")["raw_score"].is_monotonic_decreasing
        assert group.sort_values("rank")["score"].is_monotonic_decreasing


def test_customer_chunks_never_split_a_customer():
    frame = pd.DataFrame({"customer_id": [1, 1, 2, 2, 2, 3, 4, 4], "offer_id": range(8)})
    blocks = [frame.iloc[0:3], frame.iloc[3:4], frame.iloc[4:7], frame.iloc[7:8]]
    chunks = list(customer_chunks(iter(blocks)))
    assert pd.concat(chunks)["offer_id"].tolist() == list(range(8))
    seen = [set(chunk["customer_id"]) for chunk in chunks]
    assert all(a.isdisjoint(b) for i, a in enumerate(seen) for b in seen[i + 1 :])
