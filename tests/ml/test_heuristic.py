"""The fallback ranking: rate x discount depth, with a prior for offers never shown."""

import numpy as np
import pandas as pd

from ml import heuristic


def test_ranks_by_rate_times_depth_with_prior_for_unknown_rate():
    frame = pd.DataFrame(
        {
            heuristic.RATE: [0.10, 0.20, None, 0.05],
            heuristic.DEPTH: [0.30, 0.10, 0.50, None],
        }
    )
    raw = heuristic.raw_scores(frame, prior_rate=0.04)
    # no discount: the depth factor is floored, so the offer ranks last but with a finite score
    expected = np.log([0.03, 0.02, 0.02, 0.05 * heuristic.FLOOR])
    np.testing.assert_allclose(raw, expected)
    assert heuristic.rates(frame, 0.04).tolist() == [0.10, 0.20, 0.04, 0.05]
    # the score rows carry, and re-ranking weighs, orders as the raw score does
    np.testing.assert_allclose(heuristic.scores(frame, 0.04), [0.03, 0.02, 0.02, 0.05 * heuristic.FLOOR])
    # the two log factors are the explanation: they add up to the score
    np.testing.assert_allclose(heuristic.log_factors(frame, 0.04).sum(axis=1), raw)
