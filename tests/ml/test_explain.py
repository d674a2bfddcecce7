"""top_contributions picks, orders and labels each row's largest contributions."""

import numpy as np
import pandas as pd
import pytest

from ml.explain import top_contributions


def test_hand_worked_example():
    keys = pd.DataFrame({"customer_id": [1, 2], "offer_id": [10, 20]})
    feature_values = pd.DataFrame(
        {"recency": [3.0, np.nan], "business_type": ["cafe", None], "price": [9.5, 2.0], "visits": [1, 4]}
    )
    contributions = np.array(
        [
            # recency, business_type, price, visits, bias (never listed, however large)
            [0.5, -2.0, 0.1, 0.0, 9.0],
            [-0.3, 0.3, 0.3, 1.0, -9.0],  # three-way tie at |0.3|: feature order decides
        ]
    )
    result = top_contributions(keys, contributions, feature_values, n=3)
    expected = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 2],
            "offer_id": [10, 10, 10, 20, 20, 20],
            "feature": ["business_type", "recency", "price", "visits", "recency", "business_type"],
            "contribution": [-2.0, 0.5, 0.1, 1.0, -0.3, 0.3],
            "contribution_rank": [1, 2, 3, 1, 2, 3],
            "feature_value": ["cafe", "3.0", "9.5", "4", None, None],
        }
    )
    pd.testing.assert_frame_equal(result, expected, check_dtype=False)


def test_n_larger_than_the_features_lists_them_all_and_shapes_are_checked():
    keys = pd.DataFrame({"customer_id": [1]})
    values = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert len(top_contributions(keys, np.array([[1.0, 2.0, 0.0]]), values, n=5)) == 2
    with pytest.raises(ValueError, match="do not match"):
        top_contributions(keys, np.array([[1.0, 2.0]]), values)
