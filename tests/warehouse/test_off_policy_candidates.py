"""The `off_policy` build (fct_logged_visit_candidates) on the built test world: it passes, each
logged visit's candidates are exactly the offers its customer could be shown that day, and their
features are those of the same day's training examples, which hold data from before that day only
(tests/warehouse/test_leakage.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from psycopg import sql

from ml import data
from ml.features import TRAINING_MODEL, VISIT_CANDIDATES_MODEL, DbtManifest
from tests.conftest import dbt, in_use

WINDOW_DAYS = 10


@pytest.fixture(scope="module")
def visit_candidates(built_warehouse) -> pd.DataFrame:
    settings = in_use(built_warehouse)
    result = dbt(
        "build", "--selector", "off_policy", "--vars", f"{{off_policy_window_days: {WINDOW_DAYS}}}", check=False
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert "test_logged_visit_candidates_and_outcomes" in result.stdout  # its unit tests ran too
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        candidates = data.copy_out(conn, sql.SQL("select * from {}").format(manifest.relation(VISIT_CANDIDATES_MODEL)))
        examples = data.copy_out(conn, sql.SQL("select * from {}").format(manifest.relation(TRAINING_MODEL)))
    return candidates, examples, manifest


def test_each_logged_visit_gets_every_offer_it_could_be_shown(visit_candidates, generated_data):
    candidates, examples, _ = visit_candidates
    impressions = generated_data["impressions"].assign(
        shown_date=lambda frame: pd.to_datetime(frame["shown_at"]).dt.tz_convert("UTC").dt.date
    )
    labelled_end = examples["shown_date"].max()  # the last day with known labels
    window = pd.date_range(end=labelled_end, periods=WINDOW_DAYS).date
    logged = impressions[impressions["shown_date"].isin(window) & (impressions["propensity"] < 1)]
    visits = logged[["shown_date", "customer_id"]].drop_duplicates()
    assert len(visits) > 100
    assert set(candidates["as_of_date"]) == set(window)

    # independently: offers active that day, not targeted at another business type
    offers, customers = generated_data["offers"], generated_data["customers"]
    expected = visits.merge(customers[["customer_id", "business_type"]]).merge(offers, how="cross")
    active = (expected["starts_on"] <= expected["shown_date"]) & (expected["shown_date"] <= expected["ends_on"])
    targeted = expected["target_business_type"].isna() | (expected["target_business_type"] == expected["business_type"])
    expected = expected[active & targeted]
    got = set(zip(candidates["as_of_date"], candidates["customer_id"], candidates["offer_id"], strict=True))
    assert got == set(zip(expected["shown_date"], expected["customer_id"], expected["offer_id"], strict=True))

    redemptions = generated_data["redemptions"].assign(
        redeemed_date=lambda frame: pd.to_datetime(frame["redeemed_at"]).dt.tz_convert("UTC").dt.date
    )
    before = candidates.merge(redemptions[["customer_id", "offer_id", "redeemed_date"]], how="left")
    before = before[before["redeemed_date"] < before["as_of_date"]]
    redeemed = set(zip(before["as_of_date"], before["customer_id"], before["offer_id"], strict=True))
    flagged = candidates[candidates["has_redeemed_offer"]]
    assert set(zip(flagged["as_of_date"], flagged["customer_id"], flagged["offer_id"], strict=True)) == redeemed

    shown = candidates[candidates["logged_impressions"] > 0]
    assert shown["logged_impressions"].sum() == len(logged)
    assert (
        shown["propensity"].notna().all()
        and candidates.loc[candidates["logged_impressions"] == 0, "propensity"].isna().all()
    )


def test_features_are_those_of_the_days_training_examples(visit_candidates):
    """Point in time: a logged pair's features equal its training example's, built as of the day
    it was shown from data before that day (the leakage test's property); so are has_redeemed_offer's
    redemptions, before the day."""
    candidates, examples, manifest = visit_candidates
    features = manifest.feature_columns(TRAINING_MODEL)
    shown = candidates[candidates["logged_impressions"] > 0]
    matched = shown.merge(
        examples.rename(columns={"shown_date": "as_of_date"}),
        on=["as_of_date", "customer_id", "offer_id"],
        suffixes=("", "_example"),
        validate="one_to_one",
    )
    assert len(matched) == len(shown) > 100
    for feature in features:
        pd.testing.assert_series_equal(matched[feature], matched[f"{feature}_example"], check_names=False, obj=feature)
    assert (matched["redeemed_impressions"] == matched["label"]).all()
