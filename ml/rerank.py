"""Re-ranking of each customer's scored candidates: Maximal Marginal Relevance under business rules.

For each customer, positions 1..top_k are filled greedily. At each step the pick is the eligible
candidate with the highest

    mmr = λ · score - (1 - λ) · max(similarity to the offers already picked)

(0 before the first pick), where `score` is the calibrated probability and the similarity of two
offers is the share of their attributes that match: the same offer_category, the same brand kind
(is_own_brand) and the same discount band (discount_depth cut at DISCOUNT_BAND_EDGES). Attributes
missing from the frame are left out of the share; a null value matches only another null.

Business rules are hard constraints, applied while picking:
- an offer the customer has redeemed before the as-of date (`has_redeemed_offer`) is never picked;
- at most `max_per_category` picks share an offer_category;
- only the rows given are candidates: the caller passes the offers active on the date.

Ties in the objective go to the candidate that comes first in score order: higher score, then
lower `score_rank` (when given), then lower offer_id. So λ = 1 gives exactly the score order.

The loop runs over the k positions, not over customers: each step is one vectorised pass over a
customers x candidates matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# discount_depth is a fraction: bands [0, 0.10), [0.10, 0.20), [0.20, 0.30) and [0.30, 1].
DISCOUNT_BAND_EDGES = (0.10, 0.20, 0.30)
SIMILARITY_ATTRIBUTES = ("offer_category", "is_own_brand", "discount_depth")
REQUIRED_COLUMNS = ("customer_id", "offer_id", "score", "offer_category", "has_redeemed_offer")


def discount_band(discount_depth: pd.Series) -> np.ndarray:
    """0..3 for the bands of DISCOUNT_BAND_EDGES; -1 for a missing depth."""
    depth = discount_depth.to_numpy(dtype=float, na_value=np.nan)
    bands = np.searchsorted(np.asarray(DISCOUNT_BAND_EDGES), depth, side="right")
    return np.where(np.isnan(depth), -1, bands)


def _codes(values: pd.Series | np.ndarray) -> np.ndarray:
    """Integer codes with equal values (nulls included) sharing a code."""
    return pd.factorize(values, use_na_sentinel=False)[0]


def similarity_codes(frame: pd.DataFrame) -> list[np.ndarray]:
    """Per-row integer codes of the similarity attributes in `frame`, offer_category first: the
    similarity of two offers is the share of these codes they have in common."""
    codes = [_codes(frame["offer_category"])]
    if "is_own_brand" in frame.columns:
        codes.append(_codes(frame["is_own_brand"]))
    if "discount_depth" in frame.columns:
        codes.append(discount_band(frame["discount_depth"]))
    return codes


def mmr_rerank(candidates: pd.DataFrame, *, top_k: int, mmr_lambda: float, max_per_category: int) -> pd.DataFrame:
    """The re-ranked recommendations: the picked rows of `candidates` with `rank` 1..n per customer
    (n = min(top_k, eligible offers)), ordered by customer_id and rank.

    `candidates` holds one row per (customer_id, offer_id) with REQUIRED_COLUMNS, optionally
    `is_own_brand`, `discount_depth` and `score_rank`; other columns are carried through.
    """
    if not 0 <= mmr_lambda <= 1:
        raise ValueError(f"mmr_lambda must be in [0, 1], got {mmr_lambda}")
    if max_per_category < 1 or top_k < 1:
        raise ValueError(f"max_per_category and top_k must be at least 1, got {max_per_category} and {top_k}")
    missing = [name for name in REQUIRED_COLUMNS if name not in candidates.columns]
    if missing:
        raise KeyError(f"re-ranking needs the columns {missing}")
    base = candidates.drop(columns="rank", errors="ignore")
    if candidates.empty:
        return base.assign(rank=np.array([], dtype=np.int32))

    # Rows in score order within each customer: the matrix columns follow it, and argmax takes the
    # first maximum, so ties go to the earlier candidate.
    keys = [candidates["offer_id"].to_numpy()]
    if "score_rank" in candidates.columns:
        keys.append(candidates["score_rank"].to_numpy())
    order = np.lexsort((*keys, -candidates["score"].to_numpy(dtype=float), candidates["customer_id"].to_numpy()))
    customers = candidates["customer_id"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    row = np.repeat(np.arange(len(starts)), sizes)
    col = np.arange(len(order)) - np.repeat(starts, sizes)
    shape = (len(starts), int(sizes.max()))

    def matrix(values: np.ndarray, fill: object) -> np.ndarray:
        dense = np.full(shape, fill, dtype=np.asarray(values).dtype)
        dense[row, col] = values[order]
        return dense

    source_row = matrix(np.arange(len(candidates)), -1)
    score = matrix(candidates["score"].to_numpy(dtype=float), 0.0)
    # Padding cells are never eligible, so whatever code they get never counts.
    attributes = [matrix(codes, -1) for codes in similarity_codes(candidates)]
    category = attributes[0]
    redeemed = candidates["has_redeemed_offer"].fillna(False).to_numpy(dtype=bool)
    eligible = matrix(~redeemed, False)  # padding cells are never eligible

    customer_index = np.arange(shape[0])
    per_category = np.zeros((shape[0], int(category.max()) + 1), dtype=np.int32)
    max_similarity = np.zeros(shape)
    picks = np.full((shape[0], top_k), -1)
    for position in range(min(top_k, shape[1])):
        capped = per_category[customer_index[:, None], np.maximum(category, 0)] >= max_per_category
        allowed = eligible & ~capped
        objective = np.where(allowed, mmr_lambda * score - (1 - mmr_lambda) * max_similarity, -np.inf)
        best = objective.argmax(axis=1)
        found = allowed[customer_index, best]
        if not found.any():
            break
        who, pick = customer_index[found], best[found]
        picks[who, position] = source_row[who, pick]
        eligible[who, pick] = False
        per_category[who, category[who, pick]] += 1
        # Every row is updated: a customer with no pick this step has none later either.
        matches = sum((values == values[customer_index, best][:, None]).astype(float) for values in attributes)
        np.maximum(max_similarity, matches / len(attributes), out=max_similarity)

    picked = picks >= 0
    ranks = np.broadcast_to(np.arange(1, top_k + 1, dtype=np.int32), picks.shape)[picked]
    return base.iloc[picks[picked]].assign(rank=ranks).reset_index(drop=True)
