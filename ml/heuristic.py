"""The fallback ranking for days with no usable model: historical redemption rate x discount depth.

An offer that customers redeemed often, and that gives more off, ranks higher. It needs no
training, so it works on the first day and after a failed training; its rows are marked
`ranked_by = 'heuristic'` in the output tables. The score is multiplicative, so its log splits
into two additive parts, which serve as the explanation of each recommendation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HEURISTIC_ID = "heuristic"
RATE, DEPTH = "historical_redemption_rate", "discount_depth"
FEATURES = (RATE, DEPTH)
# Keeps log() finite for an offer no one redeemed yet, or with no discount: such offers rank
# last but still in a defined order.
FLOOR = 1e-6


def rates(frame: pd.DataFrame, prior_rate: float) -> np.ndarray:
    """Each row's historical redemption rate; an offer never shown yet gets `prior_rate`."""
    return frame[RATE].astype(float).fillna(prior_rate).to_numpy()


def log_factors(frame: pd.DataFrame, prior_rate: float) -> np.ndarray:
    """log(rate) and log(depth) per row, shape (n, 2): they add up to the heuristic's raw score."""
    depth = frame[DEPTH].astype(float).fillna(0.0).to_numpy()
    return np.log(np.maximum(np.column_stack([rates(frame, prior_rate), depth]), FLOOR))


def raw_scores(frame: pd.DataFrame, prior_rate: float) -> np.ndarray:
    """The ranking score: log(rate x depth). Higher ranks first."""
    return log_factors(frame, prior_rate).sum(axis=1)


def scores(frame: pd.DataFrame, prior_rate: float) -> np.ndarray:
    """rate x depth, the score the heuristic's rows carry: re-ranking weighs it, so the served order
    at λ = 1 is the heuristic's own. Not a probability."""
    return np.exp(raw_scores(frame, prior_rate))
