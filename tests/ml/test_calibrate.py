"""Calibrators agree with the scikit-learn models they are fitted by, and survive JSON."""

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ml.calibrate import PROBABILITY_EPSILON, Calibrator, fit_calibrator


def _held_out(seed: int = 0, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores twice as confident as they should be, like a class-weighted model's."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(-1, 2, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(raw / 2 - 1)))).astype(int)
    return raw, labels


def test_platt_matches_a_one_feature_logistic_regression():
    raw, labels = _held_out()
    calibrator = fit_calibrator("platt", raw, labels)
    reference = LogisticRegression(C=np.inf, max_iter=1000).fit(raw[:, None], labels)
    grid = np.linspace(-8, 8, 50)
    np.testing.assert_allclose(calibrator.predict(grid), reference.predict_proba(grid[:, None])[:, 1], rtol=1e-12)
    # it recovers the planted a = 1/2, b = -1
    assert calibrator.a == pytest.approx(0.5, abs=0.05)
    assert calibrator.b == pytest.approx(-1, abs=0.1)


def test_isotonic_matches_isotonic_regression_within_the_clip():
    raw, labels = _held_out(1)
    calibrator = fit_calibrator("isotonic", raw, labels)
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
    grid = np.linspace(-12, 12, 500)  # beyond both ends of the data too
    expected = np.clip(reference.predict(grid), PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    np.testing.assert_allclose(calibrator.predict(grid), expected, rtol=1e-12)
    assert calibrator.predict(grid).min() == PROBABILITY_EPSILON  # the lowest block holds no redemption
    assert np.all(np.diff(calibrator.predict(grid)) >= 0)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_round_trip_through_json_with_only_their_own_parameters(method):
    raw, labels = _held_out(2)
    calibrator = fit_calibrator(method, raw, labels)
    stored = json.loads(json.dumps(calibrator.to_dict()))
    expected_keys = {"platt": {"method", "a", "b"}, "isotonic": {"method", "thresholds", "probabilities"}}[method]
    assert set(stored) == expected_keys
    restored = Calibrator.from_dict(stored)
    assert restored == calibrator
    np.testing.assert_array_equal(restored.predict(raw), calibrator.predict(raw))


def test_identity_platt_is_the_sigmoid_of_the_raw_score():
    raw = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(Calibrator.identity_platt().predict(raw), 1 / (1 + np.exp(-raw)))


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="choose from platt, isotonic"):
        fit_calibrator("beta", *_held_out())
