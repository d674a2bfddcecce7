"""Feature drift: PSI against hand-worked examples, KS against scipy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from ml.drift import DRIFT_COLUMNS, EPSILON, categorical_counts, feature_drift, ks_statistic, numeric_counts, psi


def test_psi_of_two_histograms_by_hand():
    # shares 0.5/0.5 against 0.25/0.75: (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.274653, abs=1e-6)
    assert psi(np.array([3, 7, 0]), np.array([30, 70, 0])) == 0.0  # same shares; a bin empty on both sides adds 0
    assert math.isnan(psi(np.array([1, 2]), np.array([0, 0])))


def test_numeric_psi_uses_the_reference_deciles_and_a_null_bin_by_hand():
    reference = pd.Series(np.arange(1.0, 11.0))  # deciles 1.9, 2.8, ..., 9.1: one value per bin
    current = pd.Series([1.0] * 5 + [10.0] * 4 + [None])
    ref_counts, cur_counts = numeric_counts(reference, current)
    assert ref_counts.tolist() == [1] * 10 + [0]
    assert cur_counts.tolist() == [5] + [0] * 8 + [4, 1]
    expected = (
        (0.5 - 0.1) * math.log(0.5 / 0.1)
        + (0.4 - 0.1) * math.log(0.4 / 0.1)
        + 8 * (EPSILON - 0.1) * math.log(EPSILON / 0.1)
        + (0.1 - EPSILON) * math.log(0.1 / EPSILON)  # the null bin: empty in the reference
    )
    drift = feature_drift(pd.DataFrame({"x": reference}), pd.DataFrame({"x": current}), ["x"])
    assert drift["psi"].item() == pytest.approx(expected, rel=1e-12)
    assert drift["current_null_fraction"].item() == pytest.approx(0.1)
    assert drift["reference_null_fraction"].item() == 0.0


def test_repeated_deciles_collapse_into_fewer_bins():
    reference = pd.Series([0.0] * 85 + [1.0] * 15)  # deciles 0 (x8), 1 (x1): edges {0, 1}
    ref_counts, cur_counts = numeric_counts(reference, pd.Series([0.0, 1.0, 2.0, None]))
    assert ref_counts.tolist() == [85, 15, 0, 0]  # <= 0, (0, 1], > 1, null
    assert cur_counts.tolist() == [1, 1, 1, 1]
    constant = pd.DataFrame({"x": [3.0] * 50})
    assert feature_drift(constant, constant.iloc[:7], ["x"])["psi"].item() == 0.0


def test_categorical_bins_keep_unseen_categories_and_nulls_apart():
    reference = pd.Series(["a", "a", "b", None], dtype=object)
    current = pd.Series(["a", "c", "d", None, None], dtype=object)
    ref_counts, cur_counts = categorical_counts(reference, current)
    assert ref_counts.tolist() == [2, 1, 0, 1]  # a, b, unseen, null
    assert cur_counts.tolist() == [1, 0, 2, 2]
    drift = feature_drift(pd.DataFrame({"c": reference}), pd.DataFrame({"c": current}), ["c"], ["c"])
    row = drift.iloc[0]
    assert row["kind"] == "categorical" and math.isnan(row["ks"])
    assert row["psi"] == pytest.approx(psi(ref_counts, cur_counts))
    assert (row["n_reference"], row["n_current"]) == (4, 5)


@pytest.mark.parametrize("shift", [0.0, 0.3, 2.0])
def test_ks_equals_scipy(shift):
    rng = np.random.default_rng(3)
    reference = pd.Series(np.round(rng.normal(size=700), 1))  # rounded: ties across the samples
    current = pd.Series(np.round(rng.normal(shift, 1.3, size=450), 1))
    current[::17] = None  # nulls are left out of KS
    expected = ks_2samp(reference.dropna(), current.dropna()).statistic
    assert ks_statistic(reference, current) == pytest.approx(expected, abs=1e-12)
    drift = feature_drift(pd.DataFrame({"x": reference}), pd.DataFrame({"x": current}), ["x"])
    assert drift["ks"].item() == pytest.approx(expected, abs=1e-12)


def test_drift_grows_with_the_shift_and_identical_samples_do_not_drift():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(size=5000), "flag": rng.random(5000) < 0.3})
    same = feature_drift(reference, reference, ["x", "flag"])
    assert same.columns.tolist() == DRIFT_COLUMNS
    assert same["psi"].tolist() == [0.0, 0.0] and same["ks"].tolist() == [0.0, 0.0]
    values = [
        feature_drift(reference, pd.DataFrame({"x": rng.normal(shift, size=5000)}), ["x"])["psi"].item()
        for shift in (0.0, 0.2, 0.5, 1.0)
    ]
    assert values == sorted(values) and values[0] < 0.01 and values[-1] > 0.25


def test_an_empty_sample_gives_null_drift():
    reference = pd.DataFrame({"x": [1.0, 2.0]})
    drift = feature_drift(reference, reference.iloc[:0], ["x"])
    assert math.isnan(drift["psi"].item()) and math.isnan(drift["ks"].item())
    assert drift["n_current"].item() == 0
