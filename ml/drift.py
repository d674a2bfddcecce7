"""Feature drift between a reference sample (the scoring candidates of the day a model was
trained) and a current one (today's): the population stability index per feature, and for
numeric features the two-sample Kolmogorov-Smirnov statistic. Pure functions on frames.

PSI = Σ over bins (cur% - ref%) · ln(cur% / ref%), where ref% and cur% are each sample's share of
its rows in the bin, floored at `EPSILON` so that a bin empty on one side gives a large but finite
term rather than infinity (a bin empty on both sides adds 0). Bins:

- numeric: the reference's deciles (its non-null values' 10th … 90th percentiles, duplicates
  dropped, so a feature with few distinct values has fewer bins), each bin closed on the right,
  the first and last open-ended; nulls are a bin of their own;
- categorical: one bin per category seen in the reference, one for every category the reference
  never saw, and one for nulls.

KS = max over x |F_ref(x) - F_cur(x)| of the two samples' empirical distribution functions of their
non-null values (as `scipy.stats.ks_2samp(...).statistic`); null for categorical features and
when either sample has no non-null value. PSI is null when either sample is empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Floor on a bin's proportion: an empty bin counts as 0.01 % of its sample.
EPSILON = 1e-4
DECILES = np.linspace(0.1, 0.9, 9)
DRIFT_COLUMNS = [
    "feature", "kind", "psi", "ks", "n_reference", "n_current",
    "reference_null_fraction", "current_null_fraction",
]  # fmt: skip


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = EPSILON) -> float:
    """The population stability index of two histograms over the same bins (counts, not shares)."""
    reference_counts = np.asarray(reference_counts, dtype=float)
    current_counts = np.asarray(current_counts, dtype=float)
    if reference_counts.sum() == 0 or current_counts.sum() == 0:
        return float("nan")
    ref = np.maximum(reference_counts / reference_counts.sum(), epsilon)
    cur = np.maximum(current_counts / current_counts.sum(), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _floats(values: pd.Series) -> np.ndarray:
    """A numeric (or boolean) feature as floats, nulls as nan."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def decile_edges(reference: pd.Series) -> np.ndarray:
    """The reference's distinct deciles: the inner edges of a numeric feature's bins."""
    values = _floats(reference)
    values = values[~np.isnan(values)]
    return np.unique(np.quantile(values, DECILES)) if len(values) else np.array([])


def numeric_bins(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value: 0 .. len(edges) for (-inf, e0], (e0, e1], …, (e_last, inf); nulls
    get len(edges) + 1."""
    numbers = _floats(values)
    bins = np.searchsorted(edges, numbers, side="left")
    return np.where(np.isnan(numbers), len(edges) + 1, bins)


def numeric_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Both samples' counts over the reference's decile bins and the null bin."""
    edges = decile_edges(reference)
    size = len(edges) + 2
    return (
        np.bincount(numeric_bins(reference, edges), minlength=size),
        np.bincount(numeric_bins(current, edges), minlength=size),
    )


def categorical_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Both samples' counts per reference category, then unseen categories, then nulls."""
    categories = pd.Index(pd.unique(reference.dropna()))
    size = len(categories) + 2

    def counts(values: pd.Series) -> np.ndarray:
        codes = categories.get_indexer(values)  # -1: not a reference category
        bins = np.where(codes >= 0, codes, np.where(values.isna().to_numpy(), size - 1, size - 2))
        return np.bincount(bins, minlength=size)

    return counts(reference), counts(current)


def ks_statistic(reference: pd.Series, current: pd.Series) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of the non-null values (nan if a side has none)."""
    ref, cur = np.sort(_floats(reference)), np.sort(_floats(current))
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    points = np.concatenate([ref, cur])
    gap = np.searchsorted(ref, points, side="right") / len(ref) - np.searchsorted(cur, points, side="right") / len(cur)
    return float(np.max(np.abs(gap)))


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str], categorical: list[str] = ()
) -> pd.DataFrame:
    """PSI (and KS for numeric features) of each of `features` from `reference` to `current`,
    one row per feature in the order given (columns `DRIFT_COLUMNS`)."""
    rows = []
    for name in features:
        ref, cur = reference[name], current[name]
        kind = "categorical" if name in categorical else "numeric"
        if kind == "categorical":
            ref_counts, cur_counts = categorical_counts(ref.astype(object), cur.astype(object))
            ks = float("nan")
        else:
            ref_counts, cur_counts = numeric_counts(ref, cur)
            ks = ks_statistic(ref, cur)
        rows.append(
            {
                "feature": name,
                "kind": kind,
                "psi": psi(ref_counts, cur_counts),
                "ks": ks,
                "n_reference": len(ref),
                "n_current": len(cur),
                "reference_null_fraction": float(ref.isna().mean()) if len(ref) else float("nan"),
                "current_null_fraction": float(cur.isna().mean()) if len(cur) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)
