"""Why an offer scored as it did: each scored row's largest feature contributions, as rows for a table."""

from __future__ import annotations

import numpy as np
import pandas as pd


def top_contributions(
    keys: pd.DataFrame, contributions: np.ndarray, feature_values: pd.DataFrame, n: int = 3
) -> pd.DataFrame:
    """For each row of `keys`, the `n` features with the largest |contribution|, largest first.

    `contributions` is a model's (rows, features + 1) array (`RankingModel.contributions`); its
    last, bias column is not a feature and is left out. `feature_values` holds the same rows'
    features, its columns in the contributions' order. The result has columns
    [*keys.columns, feature, contribution, contribution_rank (1..n), feature_value]; the value is
    text (None for null) so numeric and categorical features share one column. Equal
    |contributions| rank in feature order (a stable sort), so the output is deterministic.
    """
    per_feature = np.asarray(contributions, dtype=np.float64)[:, :-1]
    names = np.asarray(feature_values.columns, dtype=object)
    if per_feature.shape != (len(keys), len(names)) or len(feature_values) != len(keys):
        raise ValueError(
            f"{len(keys)} keys, {len(feature_values)} rows of {len(names)} feature values and contributions"
            f" of shape {np.shape(contributions)} do not match (one column per feature, plus the bias)"
        )
    n = min(n, len(names))
    top = np.argsort(-np.abs(per_feature), axis=1, kind="stable")[:, :n]
    rows = np.repeat(np.arange(len(keys)), n)
    columns = top.ravel()
    values = feature_values.to_numpy(dtype=object)[rows, columns]
    return (
        keys.iloc[rows]
        .reset_index(drop=True)
        .assign(
            feature=names[columns],
            contribution=per_feature[rows, columns],
            contribution_rank=np.tile(np.arange(1, n + 1), len(keys)),
            feature_value=np.where(pd.isna(values), None, values.astype(str)),
        )
    )
