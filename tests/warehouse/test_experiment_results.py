"""The experiment results mart (fct_experiment_results) against an independent recomputation.

Two experiments are laid over the test world's history (the `dbt build` fixture): one with
control, canary and treatment, exposed from 60 to 40 days before the data end, and a follow-up
that takes a quarter of its customers away 20 days before the end, so that windows are cut by a
later exposure and the last week's impressions are right-censored. The labels, sums, delta-method
intervals, Wilson intervals, lifts and z-tests are recomputed here from the generated frames
with pandas and scipy, and must agree with the mart to 1e-9.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from psycopg import sql
from scipy import stats

from ml import data, experiment
from ml.config import ExperimentConfig
from ml.features import DbtManifest
from tests.conftest import TEST_DATA, dbt, in_use

LABEL_WINDOW_DAYS = 7  # the dbt var label_window_days
Z = stats.norm.ppf(0.975)
FIRST = ExperimentConfig(experiment_id="results-mart", treatment_share=0.45, canary_share=0.1)
FOLLOW_UP = ExperimentConfig(experiment_id="results-mart-follow-up", treatment_share=0.5)
FOLLOW_UP_DAYS = 20  # before the data end: two weeks of them labelled, the last week censored


def _assignments(customer_ids: np.ndarray) -> pd.DataFrame:
    """The first experiment exposes every customer on one of 21 days; the follow-up every fourth
    customer, on one day."""
    end = pd.Timestamp(TEST_DATA.end_date, tz="UTC")
    first = pd.DataFrame(
        {
            "experiment_id": FIRST.experiment_id,
            "customer_id": customer_ids,
            "variant": experiment.variants(customer_ids, FIRST),
            "assigned_at": end - pd.to_timedelta(60 - customer_ids % 21, unit="D"),
        }
    )
    later = customer_ids[customer_ids % 4 == 0]
    follow_up = pd.DataFrame(
        {
            "experiment_id": FOLLOW_UP.experiment_id,
            "customer_id": later,
            "variant": experiment.variants(later, FOLLOW_UP),
            "assigned_at": end - pd.Timedelta(days=FOLLOW_UP_DAYS),
        }
    )
    return pd.concat([first, follow_up], ignore_index=True)


@pytest.fixture(scope="module")
def results(built_warehouse, generated_data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mart built on the test world with the two experiments, and the assignments."""
    settings = in_use(built_warehouse)
    assignments = _assignments(generated_data["customers"]["customer_id"].to_numpy())
    table = sql.Identifier(settings.ml_schema, "experiment_assignments")
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, settings.ml_schema, settings.reader_role)
        with conn.transaction():
            conn.execute(
                sql.SQL("delete from {} where experiment_id = any(%s)").format(table),
                ([FIRST.experiment_id, FOLLOW_UP.experiment_id],),
            )
            data.copy_in(conn, table, assignments)
    # the mart, the models between it and the ml source, and the tests of nothing else
    selection = ("--select", "+fct_experiment_results,tag:reporting", "--indirect-selection", "cautious")
    built = dbt("build", *selection, check=False)
    assert built.returncode == 0, built.stdout[-5000:]
    with data.connect(settings) as conn:
        mart = data.copy_out(
            conn,
            sql.SQL("select * from {} where experiment_id = any(%s)").format(
                DbtManifest.load().relation("fct_experiment_results")
            ),
            ([FIRST.experiment_id, FOLLOW_UP.experiment_id],),
        )
    return mart, assignments


def _labelled(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every impression with its label, or NaN where its 7-day window is still open on the run date
    of a plain build (the day after the latest impression)."""
    impressions = frames["impressions"][["impression_id", "customer_id", "offer_id", "shown_at"]].copy()
    shown_date = impressions["shown_at"].dt.tz_convert("UTC").dt.normalize()
    run_date = shown_date.max() + pd.Timedelta(days=1)
    # a redemption counts until the end of day shown_date + 7
    impressions["window_end"] = shown_date + pd.Timedelta(days=LABEL_WINDOW_DAYS + 1)
    pairs = impressions.merge(frames["redemptions"], on=["customer_id", "offer_id"])
    redeemed = pairs.loc[
        (pairs["redeemed_at"] >= pairs["shown_at"]) & (pairs["redeemed_at"] < pairs["window_end"]), "impression_id"
    ].unique()
    impressions["label"] = impressions["impression_id"].isin(redeemed).astype(float)
    impressions.loc[impressions["window_end"] > run_date, "label"] = np.nan
    return impressions


def _in_windows(events: pd.DataFrame, exposures: pd.DataFrame, at: str) -> pd.DataFrame:
    rows = exposures.merge(events, on="customer_id")
    return rows[(rows[at] >= rows["assigned_at"]) & (rows["ends_at"].isna() | (rows[at] < rows["ends_at"]))]


def _per_customer(frames: dict[str, pd.DataFrame], assignments: pd.DataFrame) -> pd.DataFrame:
    """Each exposure's impressions, labels, margin and fixed rewards in its window."""
    exposures = assignments.sort_values(["customer_id", "assigned_at"]).copy()
    exposures["ends_at"] = exposures.groupby("customer_id")["assigned_at"].shift(-1)  # NaT: open
    keys = ["experiment_id", "customer_id"]

    shown = _in_windows(_labelled(frames), exposures, "shown_at")
    impressions = shown.groupby(keys).agg(
        impressions=("impression_id", "size"),
        impressions_labelled=("label", "count"),
        redemptions=("label", "sum"),
    )
    paid = frames["order_items"].rename(columns={"unit_price": "paid_unit_price"})
    lines = paid.merge(frames["orders"], on="order_id").merge(frames["products"], on="product_id")
    lines["gross_margin"] = lines["quantity"] * (lines["paid_unit_price"] - lines["unit_cost"])
    margin = _in_windows(lines, exposures, "ordered_at").groupby(keys)["gross_margin"].sum()
    fixed = frames["offers"].loc[frames["offers"]["discount_type"] == "fixed", ["offer_id", "reward_amount"]]
    rewards = _in_windows(frames["redemptions"].merge(fixed, on="offer_id"), exposures, "redeemed_at")
    cost = rewards.groupby(keys)["reward_amount"].sum().astype(float).rename("offer_cost")

    outcomes = pd.concat([impressions, margin, cost], axis=1)
    customers = exposures.set_index(keys)[["variant"]].join(outcomes)
    customers = customers.fillna(dict.fromkeys(outcomes.columns, 0.0))  # a customer who did nothing
    customers["margin"] = customers["gross_margin"] - customers["offer_cost"]
    return customers.reset_index()


def _delta_method_se(y: np.ndarray, n: np.ndarray) -> float:
    """Standard error of sum(y) / sum(n) over clusters (customers with n > 0): the delta method,
    written as the residuals' variance, var(y - R n) / (k mean(n)^2)."""
    y, n = y[n > 0], n[n > 0]
    rate = y.sum() / n.sum()
    return float(np.sqrt(np.var(y - rate * n, ddof=1) / (len(n) * n.mean() ** 2)))


def _variant_figures(group: pd.DataFrame) -> dict[str, float]:
    y, n = group["redemptions"].to_numpy(), group["impressions_labelled"].to_numpy()
    rate, rate_se = y.sum() / n.sum(), _delta_method_se(y, n)
    converted = int((y > 0).sum())
    wilson = stats.binomtest(converted, len(group)).proportion_ci(0.95, method="wilson")
    margin = group["margin"].to_numpy()
    margin_se = margin.std(ddof=1) / np.sqrt(len(margin))
    return {
        "customers": len(group),
        "customers_with_impressions": int((group["impressions"] > 0).sum()),
        "impressions": group["impressions"].sum(),
        "impressions_labelled": n.sum(),
        "impressions_censored": group["impressions"].sum() - n.sum(),
        "redemptions": y.sum(),
        "redemption_rate": rate,
        "redemption_rate_se": rate_se,
        "redemption_rate_ci_lower": rate - Z * rate_se,
        "redemption_rate_ci_upper": rate + Z * rate_se,
        "converted_customers": converted,
        "conversion_rate": converted / len(group),
        "conversion_rate_ci_lower": wilson.low,
        "conversion_rate_ci_upper": wilson.high,
        "gross_margin": group["gross_margin"].sum(),
        "offer_cost": group["offer_cost"].sum(),
        "margin_per_customer": margin.mean(),
        "margin_se": margin_se,
        "margin_per_customer_ci_lower": margin.mean() - Z * margin_se,
        "margin_per_customer_ci_upper": margin.mean() + Z * margin_se,
    }


def _lift(name: str, se: str, row: dict[str, float], control: dict[str, float]) -> dict[str, float]:
    """Relative lift of figure `name` over control and its 95 % interval, by the delta method on
    the log ratio of the two variants' estimates."""
    log_ratio = np.log(row[name] / control[name])
    log_se = np.hypot(row[se] / row[name], control[se] / control[name])
    lift = np.expm1([log_ratio, log_ratio - Z * log_se, log_ratio + Z * log_se])
    return dict(zip([f"{name}_lift", f"{name}_lift_ci_lower", f"{name}_lift_ci_upper"], lift, strict=True))


def _conversion_test(row: dict[str, float], control: dict[str, float]) -> dict[str, float]:
    """The pooled two-proportion z-test of conversion against control, two-sided."""
    pooled = (row["converted_customers"] + control["converted_customers"]) / (row["customers"] + control["customers"])
    se = np.sqrt(pooled * (1 - pooled) * (1 / row["customers"] + 1 / control["customers"]))
    z = (row["conversion_rate"] - control["conversion_rate"]) / se
    return {"conversion_z": z, "conversion_p_value": 2 * stats.norm.sf(abs(z))}


def _expected(customers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for experiment_id, exposed in customers.groupby("experiment_id"):
        figures = {variant: _variant_figures(group) for variant, group in exposed.groupby("variant")}
        control = figures["control"]
        for variant, row in figures.items():
            if variant != "control":
                row |= _lift("redemption_rate", "redemption_rate_se", row, control)
                row |= _lift("margin_per_customer", "margin_se", row, control)
                row |= _conversion_test(row, control)
            rows.append({"experiment_id": experiment_id, "variant": variant, **row})
    return pd.DataFrame(rows)


def test_the_mart_agrees_with_an_independent_recomputation(results, generated_data):
    mart, assignments = results
    expected = _expected(_per_customer(generated_data, assignments))
    keys = ["experiment_id", "variant"]
    joined = expected.merge(mart, on=keys, how="outer", suffixes=("", "_mart"), validate="1:1", indicator=True)
    assert (joined["_merge"] == "both").all() and len(mart) == 5
    # the world gives every figure: labelled and censored impressions, redemptions, rewards
    assert (mart["impressions_censored"] > 0).all() and (mart["redemptions"] > 0).all()
    assert (mart["offer_cost"] > 0).any() and mart["margin_per_customer"].gt(0).all()
    compared = [c for c in mart.columns if c not in keys and c in expected.columns]
    assert len(compared) == len(mart.columns) - len(keys) - 2  # all but the assignment times
    for column in compared:
        expected_values, mart_values = joined[column].astype(float), joined[f"{column}_mart"].astype(float)
        # the p-value is the erfc fit of macros/normal_two_sided_p_value.sql: within 1.2e-7 of it
        tolerance = 2e-7 if column == "conversion_p_value" else 1e-9
        np.testing.assert_allclose(mart_values, expected_values, rtol=tolerance, atol=1e-9, err_msg=column)
    first = assignments.groupby(["experiment_id", "variant"])["assigned_at"].agg(["min", "max"])
    times = mart.set_index(keys)[["first_assigned_at", "last_assigned_at"]]
    assert (times.to_numpy() == first.loc[times.index].to_numpy()).all()


def test_control_is_the_reference_and_the_follow_up_takes_its_customers_windows(results):
    mart, assignments = results
    control = mart[mart["variant"] == "control"]
    lifts = ["redemption_rate_lift", "margin_per_customer_lift", "conversion_z", "conversion_p_value"]
    assert control[lifts].isna().all().all()
    assert mart.loc[mart["variant"] != "control", lifts].notna().all().all()
    # every customer exposed counts once per experiment, whether or not they saw an offer
    counts = assignments.groupby(["experiment_id", "variant"]).size()
    assert (mart.set_index(["experiment_id", "variant"])["customers"] == counts.loc[counts.index]).all()
    # the follow-up starts 20 days before the end: its last week is censored
    follow_up = mart[mart["experiment_id"] == FOLLOW_UP.experiment_id]
    start = TEST_DATA.end_date - dt.timedelta(days=FOLLOW_UP_DAYS)
    assert (follow_up["first_assigned_at"].dt.date == start).all()
    assert (follow_up["impressions_censored"] > 0).all() and (follow_up["impressions_labelled"] > 0).all()
