"""Experiment assignment and shadow agreement, against independent computations."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import numpy as np
import pandas as pd
import pytest

from ml import experiment
from ml.config import BUCKETS, ExperimentConfig, load_experiment_config

SPLIT = ExperimentConfig(experiment_id="exp-1", salt="pepper", treatment_share=0.5, canary_share=0.1)


def reference_variant(customer_id: int, config: ExperimentConfig) -> str:
    """The documented hash, one customer at a time."""
    digest = hashlib.sha256(f"{config.salt}:{config.experiment_id}:{customer_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % BUCKETS
    control = round((1 - config.treatment_share - config.canary_share) * BUCKETS)
    if bucket < control:
        return "control"
    return "canary" if bucket < control + round(config.canary_share * BUCKETS) else "treatment"


def test_assignment_is_the_documented_salted_hash():
    ids = np.array([1, 2, 3, 17, 10_000, 2**40, 123_456_789])
    assert experiment.variants(ids, SPLIT).tolist() == [reference_variant(int(c), SPLIT) for c in ids]
    # per row, hashing each customer once, in any order
    rows = pd.Series([17, 1, 17, 3, 1])
    assert experiment.customer_variants(rows, SPLIT).tolist() == [reference_variant(c, SPLIT) for c in rows]


def test_split_proportions_are_within_binomial_bounds_and_fast():
    ids = np.arange(1, 100_001)
    # CPU time: the suite shares its cores, and waiting for one is not the hash's cost
    started = time.process_time()
    assigned = experiment.variants(ids, SPLIT)
    seconds = time.process_time() - started
    assert seconds < 0.5, f"{seconds:.2f} s of CPU for 100k customers"
    n = len(ids)
    for variant, share in (("treatment", 0.5), ("canary", 0.1), ("control", 0.4)):
        count = int((assigned == variant).sum())
        # 5 standard deviations: a false alarm once in millions of runs
        assert abs(count - n * share) < 5 * np.sqrt(n * share * (1 - share)), (variant, count)


def test_salt_and_experiment_id_reshuffle_customers():
    ids = np.arange(1, 20_001)
    base = experiment.variants(ids, SPLIT)
    for other in (
        ExperimentConfig(experiment_id="exp-1", salt="salt", treatment_share=0.5, canary_share=0.1),
        ExperimentConfig(experiment_id="exp-2", salt="pepper", treatment_share=0.5, canary_share=0.1),
    ):
        moved = (experiment.variants(ids, other) != base).mean()
        # independent draws disagree with probability 1 - (0.5² + 0.1² + 0.4²) = 0.58
        assert 0.55 < moved < 0.61


def test_defaults_put_everyone_in_treatment():
    config = load_experiment_config({})
    assert (config.treatment_share, config.canary_share, config.shadow) == (1.0, 0.0, "off")
    assert set(experiment.variants(np.arange(1, 5_001), config)) == {"treatment"}


def test_a_changed_split_under_the_same_experiment_fails_with_what_to_do():
    ids = np.arange(1, 2_001)
    stored = pd.DataFrame({"customer_id": ids, "variant": experiment.variants(ids, SPLIT)})
    experiment.check_stored(stored, SPLIT)  # the same split reproduces them
    experiment.check_stored(stored.iloc[:0], ExperimentConfig())
    changed = ExperimentConfig(experiment_id="exp-1", salt="pepper", treatment_share=0.6, canary_share=0.1)
    with pytest.raises(experiment.AssignmentChangedError, match="new experiment with a new OFFERRANK_EXPERIMENT"):
        experiment.check_stored(stored, changed)


def test_assignment_rows_are_stamped_at_midnight_utc_of_the_day():
    rows = experiment.assignments(pd.Series([5, 6]), np.array(["control", "treatment"]), SPLIT, dt.date(2026, 3, 4))
    assert rows.columns.tolist() == experiment.ASSIGNMENT_COLUMNS
    assert set(rows["assigned_at"]) == {pd.Timestamp("2026-03-04T00:00:00Z")}
    assert set(rows["experiment_id"]) == {"exp-1"}


def test_overlap_at_k_matches_set_arithmetic():
    rng = np.random.default_rng(3)
    served_rows, shadow_rows, expected = [], [], {}
    for customer in range(1, 200):
        length = int(rng.integers(1, 6))
        pool = rng.choice(20, size=10, replace=False)
        served, shadow = pool[:length], rng.choice(pool, size=length, replace=False)
        served_rows += [(customer, offer) for offer in served]
        shadow_rows += [(customer, offer) for offer in shadow] if customer % 7 else []  # some have no shadow list
        expected[customer] = len(set(served) & set(shadow)) / length if customer % 7 else 0.0
    served = pd.DataFrame(served_rows, columns=["customer_id", "offer_id"])
    shadow = pd.DataFrame(shadow_rows, columns=["customer_id", "offer_id"])
    overlap = experiment.overlap_at_k(served, shadow)
    assert overlap.to_dict() == pytest.approx(expected)
    rows = experiment.agreement_rows(dt.date(2026, 1, 1), {"treatment": (overlap.sum(), len(overlap))}, "m", 5)
    assert rows.set_index("variant")["overlap_at_k"].to_dict() == pytest.approx(
        {"treatment": np.mean(list(expected.values())), "all": np.mean(list(expected.values()))}
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OFFERRANK_TREATMENT_SHARE": "0.7", "OFFERRANK_CANARY_SHARE": "0.4"}, "add up to more than 1"),
        ({"OFFERRANK_TREATMENT_SHARE": "1.5"}, "OFFERRANK_TREATMENT_SHARE must be a share"),
        ({"OFFERRANK_CANARY_SHARE": "half"}, "OFFERRANK_CANARY_SHARE must be a share"),
        ({"OFFERRANK_TREATMENT_SHARE": "0.12345"}, "in steps of 0.0001"),
    ],
)
def test_invalid_experiment_settings_fail_with_the_variable_named(environ, message):
    with pytest.raises(ValueError, match=message):
        load_experiment_config(environ)


def test_experiment_settings_from_the_environment():
    config = load_experiment_config(
        {"OFFERRANK_EXPERIMENT": "spring", "OFFERRANK_EXPERIMENT_SALT": "s", "OFFERRANK_CANARY_SHARE": "0.05",
         "OFFERRANK_SHADOW": "on", "OFFERRANK_CANARY_MODEL": "lgbm_x"}
    )  # fmt: skip
    assert config == ExperimentConfig("spring", "s", 0.95, 0.05, "lgbm_x", "challenger")
    assert (config.control_buckets, config.canary_buckets, config.treatment_buckets) == (0, 500, 9_500)
    assert load_experiment_config({"OFFERRANK_SHADOW": "lgbm_y"}).shadow == "lgbm_y"
    assert load_experiment_config({"OFFERRANK_TREATMENT_SHARE": "0.5"}).control_buckets == 5_000
