"""Which columns a model reads, and in what form: shared by every algorithm so they read frames alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureSpec:
    """The model's input columns in order; `categorical` names those holding text categories."""

    names: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        stray = [name for name in self.categorical if name not in self.names]
        if stray:
            raise ValueError(f"categorical features {stray} are not among the feature names")

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if name not in self.categorical)

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of `frame` in order: numeric as float64, categorical as object, NaN for null.

        Warehouse columns arrive as nullable or decimal types; one conversion here means every
        algorithm, and scoring, sees the same values.
        """
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise KeyError(f"feature columns missing from the data: {missing}")
        columns = {name: frame[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in self.numeric}
        for name in self.categorical:
            columns[name] = frame[name].astype(object).where(frame[name].notna(), np.nan).to_numpy()
        return pd.DataFrame(columns, index=frame.index)[list(self.names)]

    def importance_table(self, by_type: Mapping[str, Sequence[float]]) -> pd.DataFrame:
        """Feature importances as rows (feature, importance_type, importance), one per feature per type."""
        return pd.DataFrame(
            {
                "feature": [name for _ in by_type for name in self.names],
                "importance_type": [kind for kind in by_type for _ in self.names],
                "importance": np.concatenate([np.asarray(values, dtype=np.float64) for values in by_type.values()]),
            }
        )
