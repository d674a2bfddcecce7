"""Raw scores to probabilities: a calibrator fitted on the tune window's raw scores and labels.

Models rank in raw (margin) space, and class weighting shifts that space on purpose; what a
report or a threshold needs is a probability of redemption, so each model gets a calibrator,
fitted on data its trees never saw. A calibrator is a few numbers, stored as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ml.config import CALIBRATION_METHODS

# Isotonic regression maps its lowest block to 0 (and highest to 1) when those blocks hold one
# class only; a probability of exactly 0 or 1 makes the log loss infinite. Clip to this far from
# either end: below any redemption rate we could measure.
PROBABILITY_EPSILON = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """Platt (p = 1 / (1 + exp(-(a * raw + b)))) or isotonic (piecewise linear through thresholds)."""

    method: str
    a: float = 1.0
    b: float = 0.0
    thresholds: tuple[float, ...] = ()  # isotonic: raw scores, ascending
    probabilities: tuple[float, ...] = ()  # isotonic: the probability at each threshold

    @classmethod
    def identity_platt(cls) -> Calibrator:
        """The sigmoid of the raw score: right for a model trained unweighted on log loss with no calibration stored."""
        return cls("platt")

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities in [0, 1] for raw scores."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * raw + self.b)))
        # np.interp holds the end values beyond the thresholds: out_of_bounds='clip'
        interpolated = np.interp(raw, self.thresholds, self.probabilities)
        return np.clip(interpolated, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the method and its own parameters only."""
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "isotonic", "thresholds": list(self.thresholds), "probabilities": list(self.probabilities)}

    @classmethod
    def from_dict(cls, stored: dict[str, object]) -> Calibrator:
        if stored["method"] == "platt":
            return cls("platt", a=float(stored["a"]), b=float(stored["b"]))
        return cls(
            "isotonic",
            thresholds=tuple(map(float, stored["thresholds"])),
            probabilities=tuple(map(float, stored["probabilities"])),
        )


def fit_calibrator(method: str, raw_scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """A calibrator of `method` ('platt' or 'isotonic') fitted on held-out raw scores and their labels.

    Platt is an unregularised logistic regression on the raw score alone: two parameters, hard
    to overfit, but only a sigmoid's shape. Isotonic is any monotone step curve (interpolated
    between steps): it needs more rows and, like Platt, keeps the ranking (up to ties it makes).
    """
    raw = np.asarray(raw_scores, dtype=np.float64)
    labels = np.asarray(labels)
    if method == "platt":
        regression = LogisticRegression(C=np.inf, max_iter=1000).fit(raw[:, None], labels)
        return Calibrator("platt", a=float(regression.coef_[0, 0]), b=float(regression.intercept_[0]))
    if method == "isotonic":
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
        return Calibrator(
            "isotonic",
            thresholds=tuple(isotonic.X_thresholds_.tolist()),
            probabilities=tuple(isotonic.y_thresholds_.tolist()),
        )
    raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
