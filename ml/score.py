"""Scores and per-customer ranks for the day's candidate pairs, on DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORE_COLUMNS = ["score_date", "customer_id", "offer_id", "model_id", "score", "raw_score", "rank", "ranked_by"]


def rank_within_customer(customer_ids: np.ndarray, offer_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Rank 1..n of each offer within its customer: higher score first, ties by lower offer_id."""
    order = np.lexsort((offer_ids, -scores, customer_ids))
    sorted_customers = customer_ids[order]
    starts = np.r_[True, sorted_customers[1:] != sorted_customers[:-1]]
    group_start_index = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    ranks = np.empty(len(order), dtype=np.int32)
    ranks[order] = np.arange(len(order)) - group_start_index + 1
    return ranks


def score_frame(
    candidates: pd.DataFrame, raw_scores: np.ndarray, scores: np.ndarray, model_id: str, *, ranked_by: str
) -> pd.DataFrame:
    """The `offer_scores` rows for scored candidates (columns as_of_date, customer_id, offer_id).

    Ranks follow the raw score: calibration is monotone, but isotonic calibration maps whole
    ranges of raw scores to one probability and would turn them into ties.
    """
    customer_ids = candidates["customer_id"].to_numpy()
    offer_ids = candidates["offer_id"].to_numpy()
    return pd.DataFrame(
        {
            "score_date": candidates["as_of_date"].to_numpy(),
            "customer_id": customer_ids,
            "offer_id": offer_ids,
            "model_id": model_id,
            "score": scores,
            "raw_score": raw_scores,
            "rank": rank_within_customer(customer_ids, offer_ids, raw_scores),
            "ranked_by": ranked_by,
        },
        columns=SCORE_COLUMNS,
    )
