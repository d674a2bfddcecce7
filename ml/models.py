"""The ranking models offerrank trains, behind one interface: fit, score, explain, store, load.

Every model scores in raw (margin, log-odds-like) space, where higher ranks first; turning raw
scores into probabilities is `ml.calibrate`'s job, fitted on the tune window.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from ml.config import TrainingConfig
from ml.feature_spec import FeatureSpec
from ml.lgbm import fit_lgbm_binary, fit_lgbm_lambdarank, load_lgbm
from ml.logreg import fit_logreg, load_logreg
from ml.train import TemporalSplit

__all__ = ["FeatureSpec", "RankingModel", "fit_model", "load_model"]


class RankingModel(Protocol):
    """What the pipeline needs of a model, whatever the algorithm."""

    algorithm: str
    features: FeatureSpec

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """One score per row, higher is better, in margin/logit space."""
        ...

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Additive per-feature contributions, shape (rows, features + 1); each row sums to its raw score.

        The last column is the bias (expected value).
        """
        ...

    def feature_importance(self) -> pd.DataFrame:
        """Columns feature, importance_type, importance: one row per feature per importance type."""
        ...

    def to_text(self) -> str:
        """Everything needed to score; `load_model(algorithm, text, features)` restores the model exactly."""
        ...

    @property
    def params(self) -> dict[str, object]:
        """JSON-serialisable hyperparameters, best iteration, class weighting and the like."""
        ...


_FITTERS: dict[str, Callable[[TemporalSplit, FeatureSpec, TrainingConfig], RankingModel]] = {
    "logreg": fit_logreg,
    "lgbm_binary": fit_lgbm_binary,
    "lgbm_lambdarank": fit_lgbm_lambdarank,
}
_LOADERS: dict[str, Callable[[str, FeatureSpec], RankingModel]] = {
    "logreg": load_logreg,
    "lgbm_binary": partial(load_lgbm, "lgbm_binary"),
    "lgbm_lambdarank": partial(load_lgbm, "lgbm_lambdarank"),
}


def fit_model(algorithm: str, split: TemporalSplit, features: FeatureSpec, config: TrainingConfig) -> RankingModel:
    """Fit `algorithm` on the split's training window (early stopping, where it applies, on the tune window)."""
    return _lookup(_FITTERS, algorithm)(split, features, config)


def load_model(algorithm: str, text: str, features: FeatureSpec) -> RankingModel:
    """The model `to_text` wrote, scoring exactly as it did."""
    return _lookup(_LOADERS, algorithm)(text, features)


T = TypeVar("T")


def _lookup(table: dict[str, T], algorithm: str) -> T:
    if algorithm not in table:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(table)}")
    return table[algorithm]
