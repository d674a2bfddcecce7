"""Tests of the synthetic data generator: the raw-table contract, determinism and the planted signal."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from ml.generate import (
    BUSINESS_TYPES,
    CATEGORIES,
    GeneratorParams,
    generate_all,
    generate_dataset,
    propensities,
    sample_shown,
    simulate,
)

# The raw contract v2 (docs/contract-draft.md): columns in order, with the dtype the generator gives
# each ("date": an object column of datetime.date; nullable columns are Int64/Float64 or str with NaN).
CONTRACT: dict[str, dict[str, str]] = {
    "customers": {"customer_id": "int64", "business_type": "str", "region": "str", "signup_date": "date"},
    "products": {
        "product_id": "int64", "department": "str", "category": "str", "price_tier": "int16",
        "is_own_brand": "bool", "is_fresh": "bool", "unit_price": "float64", "unit_cost": "float64",
    },
    "orders": {"order_id": "int64", "customer_id": "int64", "ordered_at": "datetime64[ns, UTC]"},
    "order_items": {
        "order_id": "int64", "line_number": "int32", "product_id": "int64", "quantity": "int32",
        "unit_price": "float64", "is_promo": "bool",
    },
    "offers": {
        "offer_id": "int64", "product_id": "Int64", "category": "str", "discount_type": "str",
        "discount_pct": "Float64", "reward_amount": "Float64", "min_spend": "Float64", "margin_impact": "float64",
        "starts_on": "date", "ends_on": "date", "target_business_type": "str",
    },
    "impressions": {
        "impression_id": "int64", "customer_id": "int64", "offer_id": "int64",
        "shown_at": "datetime64[ns, UTC]", "propensity": "float64",
    },
    "redemptions": {
        "redemption_id": "int64", "customer_id": "int64", "offer_id": "int64", "redeemed_at": "datetime64[ns, UTC]",
    },
    "interaction_events": {
        "event_id": "int64", "impression_id": "int64", "event_type": "str", "event_at": "datetime64[ns, UTC]",
    },
}  # fmt: skip
NULLABLE = {"offers": {"product_id", "category", "discount_pct", "reward_amount", "min_spend", "target_business_type"}}
PRIMARY_KEYS = {table: [next(iter(columns))] for table, columns in CONTRACT.items()} | {
    "order_items": ["order_id", "line_number"]
}
LOAD_ORDER = list(CONTRACT)
SMALL = GeneratorParams(customers=300, products=40, offers=20, days=45, seed=7)
DEFAULTS = GeneratorParams()
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def generated() -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    return generate_all(DEFAULTS)


@pytest.fixture(scope="module")
def dataset(generated: tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    return generated[0]


@pytest.fixture(scope="module")
def truth(generated: tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    return generated[1]


@pytest.fixture(scope="module")
def redeemed(dataset: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Impressions with `is_redeemed`: the same customer redeemed the offer within 14 days after it."""
    impressions, redemptions = dataset["impressions"], dataset["redemptions"]
    pairs = impressions.merge(redemptions, on=["customer_id", "offer_id"], how="inner")
    hit = pairs[(pairs.redeemed_at > pairs.shown_at) & (pairs.redeemed_at <= pairs.shown_at + 14 * DAY)]
    return impressions.assign(is_redeemed=impressions.impression_id.isin(hit.impression_id))


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    (first, first_truth), (second, second_truth) = generate_all(SMALL), generate_all(SMALL)
    assert list(first) == LOAD_ORDER == list(second)
    for table in LOAD_ORDER:
        pd.testing.assert_frame_equal(first[table], second[table])
    assert list(first_truth) == ["impression_outcomes"] == list(second_truth)
    pd.testing.assert_frame_equal(first_truth["impression_outcomes"], second_truth["impression_outcomes"])
    for table, frame in generate_dataset(SMALL).items():
        pd.testing.assert_frame_equal(frame, first[table])


def test_different_seed_gives_different_frames() -> None:
    first = generate_dataset(SMALL)
    other = generate_dataset(GeneratorParams(customers=300, products=40, offers=20, days=45, seed=8))
    for table in ["customers", "orders", "impressions", "interaction_events"]:
        assert not first[table].equals(other[table]), table


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        GeneratorParams(products=5)
    with pytest.raises(ValueError):
        GeneratorParams(days=0)


# --- the contract ----------------------------------------------------------------------------------


def test_columns_and_dtypes_match_the_contract(dataset: dict[str, pd.DataFrame]) -> None:
    assert list(dataset) == LOAD_ORDER
    for table, columns in CONTRACT.items():
        frame = dataset[table]
        assert list(frame.columns) == list(columns), table
        for column, dtype in columns.items():
            series = frame[column]
            if dtype == "str":
                assert pd.api.types.is_string_dtype(series.dtype), (table, column)
            elif dtype == "date":
                assert series.dtype == object
                assert all(type(value) is dt.date for value in series), (table, column)
            else:
                assert str(series.dtype) == dtype, (table, column, series.dtype)
            if column not in NULLABLE.get(table, set()):
                assert series.notna().all(), (table, column)


def test_primary_keys_are_unique(dataset: dict[str, pd.DataFrame]) -> None:
    for table, key in PRIMARY_KEYS.items():
        assert not dataset[table].duplicated(subset=key).any(), table


def test_foreign_keys_resolve(dataset: dict[str, pd.DataFrame]) -> None:
    customers = set(dataset["customers"].customer_id)
    offers = set(dataset["offers"].offer_id)
    products = set(dataset["products"].product_id)
    assert set(dataset["orders"].customer_id) <= customers
    assert set(dataset["order_items"].order_id) == set(dataset["orders"].order_id)  # no empty orders
    assert set(dataset["order_items"].product_id) <= products
    assert set(dataset["offers"].product_id.dropna()) <= products
    for table in ["impressions", "redemptions"]:
        assert set(dataset[table].customer_id) <= customers, table
        assert set(dataset[table].offer_id) <= offers, table
    assert set(dataset["interaction_events"].impression_id) == set(dataset["impressions"].impression_id)


def test_products_hold_their_invariants(dataset: dict[str, pd.DataFrame]) -> None:
    products = dataset["products"]
    assert products.price_tier.between(1, 3).all()
    assert (products.unit_cost > 0).all() and (products.unit_cost < products.unit_price).all()
    assert 8 <= products.category.nunique() <= 12
    fresh_share = products.groupby("category").is_fresh.mean()
    assert fresh_share.max() > 0.5 and fresh_share.min() == 0  # freshness depends on the category
    by_tier = products.groupby("price_tier").unit_price.median()
    assert by_tier.is_monotonic_increasing
    assert (products.groupby("category").department.nunique() == 1).all()  # a hierarchy
    assert set(products.department) == {c.department for c in CATEGORIES}
    assert 3 <= products.department.nunique() < products.category.nunique()


def test_orders_hold_their_invariants(dataset: dict[str, pd.DataFrame]) -> None:
    customers, orders, items = dataset["customers"], dataset["orders"], dataset["order_items"]
    start = pd.Timestamp(DEFAULTS.end_date - dt.timedelta(days=DEFAULTS.days - 1), tz="UTC")
    assert (
        orders.ordered_at.min() >= start and orders.ordered_at.max() < pd.Timestamp(DEFAULTS.end_date, tz="UTC") + DAY
    )
    signup = orders.merge(customers, on="customer_id").signup_date.map(pd.Timestamp).dt.tz_localize("UTC")
    assert (orders.ordered_at.to_numpy() >= signup.to_numpy()).all()
    lines = items.groupby("order_id").line_number.agg(["min", "max", "size"])
    assert (lines["min"] == 1).all() and (lines["max"] == lines["size"]).all() and lines["size"].max() <= 10
    assert (items.quantity >= 1).all()
    list_price = items.merge(dataset["products"], on="product_id", suffixes=("", "_list")).unit_price_list
    assert np.allclose(items.unit_price[~items.is_promo], list_price[~items.is_promo])
    assert (items.unit_price[items.is_promo] < list_price[items.is_promo]).all()
    assert (items.unit_price > 0).all()


def test_business_types_shape_orders(dataset: dict[str, pd.DataFrame]) -> None:
    customers = dataset["customers"]
    assert set(customers.business_type) == {bt.name for bt in BUSINESS_TYPES}
    lines = dataset["order_items"].merge(dataset["orders"], on="order_id").merge(customers, on="customer_id")
    quantity = lines.groupby("business_type").quantity.mean()
    assert quantity["horeca"] > 2 * quantity["household"] and quantity["trader"] > 2 * quantity["office"]
    is_weekend = lines.ordered_at.dt.day_of_week >= 5
    weekend_share = is_weekend.groupby(lines.business_type).mean()
    assert weekend_share["office"] < 0.1 < weekend_share["household"]


def test_money_and_ratios_are_rounded(dataset: dict[str, pd.DataFrame]) -> None:
    def rounded(series: pd.Series, decimals: int) -> bool:
        return bool(np.allclose(series, series.round(decimals), rtol=0, atol=1e-9))

    products, items, offers = dataset["products"], dataset["order_items"], dataset["offers"]
    assert rounded(products.unit_price, 2) and rounded(products.unit_cost, 2) and rounded(items.unit_price, 2)
    assert rounded(offers.margin_impact, 4)
    for column in ["discount_pct", "reward_amount", "min_spend"]:
        assert rounded(offers[column].dropna().astype(float), 2), column


def test_offers_hold_their_invariants(dataset: dict[str, pd.DataFrame]) -> None:
    offers = dataset["offers"]
    percent = offers.discount_pct.dropna()
    assert ((percent > 0) & (percent < 100)).all() and percent.between(5, 40).all()
    assert offers.margin_impact.between(0, 1).all()
    assert (offers.ends_on >= offers.starts_on).all()
    duration = offers.ends_on.map(dt.date.toordinal) - offers.starts_on.map(dt.date.toordinal) + 1
    assert duration.between(7, 28).all()
    assert not (offers.product_id.notna() & offers.category.notna()).any()
    kind = np.select([offers.product_id.notna(), offers.category.notna()], ["product", "category"], "store")
    assert set(kind) == {"product", "category", "store"}
    assert set(offers.target_business_type.dropna()) <= {bt.name for bt in BUSINESS_TYPES}
    assert 0.05 < offers.target_business_type.notna().mean() < 0.4
    depth = offers.discount_pct.fillna(100 * offers.reward_amount / offers.min_spend).astype(float)
    deeper = depth > depth.median()
    assert offers.margin_impact[deeper].mean() > offers.margin_impact[~deeper].mean()


def test_percent_and_fixed_offers(dataset: dict[str, pd.DataFrame]) -> None:
    offers = dataset["offers"]
    assert set(offers.discount_type) == {"percent", "fixed"}
    fixed = offers[offers.discount_type == "fixed"]
    percent = offers[offers.discount_type == "percent"]
    assert 0.1 <= len(fixed) / len(offers) <= 0.45
    assert fixed.discount_pct.isna().all() and fixed.reward_amount.notna().all() and fixed.min_spend.notna().all()
    assert fixed.reward_amount.between(5, 50).all()
    assert (fixed.min_spend / fixed.reward_amount).between(2.9, 10.1).all()
    assert percent.discount_pct.notna().all() and percent.reward_amount.isna().all()
    assert percent.min_spend.notna().any() and percent.min_spend.isna().any()  # a minimum spend is optional
    many = generate_dataset(GeneratorParams(customers=50, products=20, offers=2000, days=10))["offers"]
    assert 0.22 <= (many.discount_type == "fixed").mean() <= 0.28


def test_offers_are_staggered(dataset: dict[str, pd.DataFrame]) -> None:
    offers = dataset["offers"]
    days = pd.date_range(end=DEFAULTS.end_date, periods=DEFAULTS.days).date
    active = np.array([((offers.starts_on <= day) & (offers.ends_on >= day)).sum() for day in days])
    assert active.min() >= 3 and 8 <= active.mean() <= 20 and active.max() <= 25
    tomorrow = DEFAULTS.end_date + dt.timedelta(days=1)
    assert ((offers.starts_on <= tomorrow) & (offers.ends_on >= tomorrow)).sum() >= 1  # something to score


def test_impressions_show_eligible_offers(dataset: dict[str, pd.DataFrame]) -> None:
    shown = dataset["impressions"].merge(dataset["offers"], on="offer_id").merge(dataset["customers"], on="customer_id")
    day = shown.shown_at.dt.date
    assert ((day >= shown.starts_on) & (day <= shown.ends_on)).all()
    assert (day >= shown.signup_date).all()
    targeted = shown.target_business_type.notna()
    assert (shown.target_business_type[targeted] == shown.business_type[targeted]).all()
    per_visit = shown.groupby(["customer_id", day]).size()
    assert per_visit.min() >= 1 and 1.5 <= per_visit.mean() <= 3.5 and per_visit.max() <= 12
    assert not shown.duplicated(subset=["customer_id", "offer_id", "shown_at"]).any()


# --- redemptions -----------------------------------------------------------------------------------


def test_redemptions_follow_an_impression_within_14_days(
    dataset: dict[str, pd.DataFrame], redeemed: pd.DataFrame
) -> None:
    redemptions = dataset["redemptions"]
    pairs = redemptions.merge(dataset["impressions"], on=["customer_id", "offer_id"], how="left")
    delay = pairs.redeemed_at - pairs.shown_at
    matched = pairs.assign(ok=(delay > pd.Timedelta(0)) & (delay <= 14 * DAY)).groupby("redemption_id").ok.any()
    assert matched.all() and len(matched) == len(redemptions)
    assert redemptions.redeemed_at.max() < pd.Timestamp(DEFAULTS.end_date, tz="UTC") + DAY
    assert not redemptions.duplicated(subset=["customer_id", "offer_id"]).any()
    late = pairs.groupby("redemption_id").apply(
        lambda g: (g.redeemed_at - g.shown_at)[lambda d: d > pd.Timedelta(0)].min()
    )
    assert (late > 7 * DAY).any()  # some fall outside a 7-day label window
    ends = redemptions.merge(dataset["offers"], on="offer_id").ends_on
    assert (redemptions.redeemed_at.dt.date <= ends).all()


def test_redemption_rate_is_in_range(dataset: dict[str, pd.DataFrame]) -> None:
    rate = len(dataset["redemptions"]) / len(dataset["impressions"])
    assert 0.05 <= rate <= 0.10


def _bought_before_reference(dataset: dict[str, pd.DataFrame]) -> pd.Series:
    """Per impression of a product offer: did the customer order the product on an earlier day?"""
    lines = dataset["order_items"].merge(dataset["orders"], on="order_id")
    first = lines.assign(day=lines.ordered_at.dt.floor("D")).groupby(["customer_id", "product_id"]).day.min()
    shown = dataset["impressions"].merge(dataset["offers"][["offer_id", "product_id"]], on="offer_id")
    shown = shown[shown.product_id.notna()].astype({"product_id": "int64"})
    shown = shown.join(first.rename("first_day"), on=["customer_id", "product_id"])
    return (shown.first_day < shown.shown_at.dt.floor("D")).set_axis(shown.impression_id)


def test_bought_before_matches_a_pandas_reference(dataset: dict[str, pd.DataFrame]) -> None:
    world = simulate(DEFAULTS)
    reference = _bought_before_reference(dataset)
    vectorised = pd.Series(world.features.bought_product_before, index=dataset["impressions"].impression_id)
    assert reference.sum() > 100
    assert (vectorised[reference.index] == reference).all()
    assert not vectorised.drop(reference.index).any()


def test_redemptions_carry_signal(dataset: dict[str, pd.DataFrame], redeemed: pd.DataFrame) -> None:
    bought = _bought_before_reference(dataset)
    rate = redeemed.set_index("impression_id").is_redeemed[bought.index].groupby(bought.to_numpy()).mean()
    assert rate[True] > 1.8 * rate[False] and rate[True] - rate[False] > 0.05

    preference = (
        dataset["order_items"]
        .merge(dataset["orders"], on="order_id")
        .merge(dataset["products"][["product_id", "category"]], on="product_id")
        .groupby("customer_id")
        .category.value_counts(normalize=True)
        .rename("share")
    )
    offers = dataset["offers"].merge(
        dataset["products"][["product_id", "category"]], on="product_id", how="left", suffixes=("", "_of_product")
    )
    offers["covered"] = offers.category.fillna(offers.category_of_product)
    shown = redeemed.merge(offers[["offer_id", "covered"]], on="offer_id").dropna(subset=["covered"])
    shown = shown.join(preference, on=["customer_id", "covered"]).fillna({"share": 0.0})
    high = shown.share >= shown.share.quantile(0.75)
    low = shown.share <= shown.share.quantile(0.25)
    assert shown.is_redeemed[high].mean() > 1.5 * shown.is_redeemed[low].mean()


def test_row_counts_at_defaults(dataset: dict[str, pd.DataFrame]) -> None:
    counts = {table: len(frame) for table, frame in dataset.items()}
    assert counts["customers"] == 2000 and counts["products"] == 300 and counts["offers"] == 80
    assert 20_000 <= counts["orders"] <= 60_000
    assert 3 * counts["orders"] <= counts["order_items"] <= 7 * counts["orders"]
    assert 50_000 <= counts["impressions"] <= 100_000
    assert 2_500 <= counts["redemptions"] <= 10_000
    assert 1.2 * counts["impressions"] <= counts["interaction_events"] <= 2 * counts["impressions"]


# --- loading ---------------------------------------------------------------------------------------


def test_frames_serialise_for_copy(dataset: dict[str, pd.DataFrame]) -> None:
    """Dates come out as YYYY-MM-DD and missing values as empty fields, as `ml.data.copy_in` writes them."""
    for table in ["customers", "offers", "impressions", "interaction_events"]:
        buffer = io.BytesIO()
        frame = dataset[table].head(50)
        pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        parsed = pd.read_csv(io.BytesIO(buffer.getvalue()), keep_default_na=False, dtype=str)
        for column in ["signup_date", "starts_on", "ends_on"]:
            if column in parsed:
                assert parsed[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all(), column
        if table == "offers":
            for column in ["product_id", "discount_pct", "reward_amount", "min_spend"]:
                assert (parsed[column] == "").sum() == frame[column].isna().sum(), column


# --- the logging policy ----------------------------------------------------------------------------


def test_sampler_shows_offers_with_the_stated_propensities() -> None:
    """Monte Carlo: the inclusion frequency of each offer is the propensity, including the redraw of
    empty visits."""
    q = np.array([[0.02, 0.1, 0.3, 0.05, 0.6]])
    shown = sample_shown(np.random.default_rng(0), np.repeat(q, 200_000, axis=0))
    assert shown.any(axis=1).all()
    expected = propensities(q)[0]
    assert np.allclose(shown.mean(axis=0), expected, rtol=0.05, atol=0.002)
    assert (expected > q[0]).all() and (expected <= 1).all()


def test_propensities_are_probabilities_of_a_non_uniform_policy(dataset: dict[str, pd.DataFrame]) -> None:
    impressions = dataset["impressions"]
    assert ((impressions.propensity > 0) & (impressions.propensity <= 1)).all()
    assert impressions.propensity.std() > 0.1  # not uniform
    shown = impressions.merge(dataset["offers"], on="offer_id")
    depth = shown.discount_pct.fillna(100 * shown.reward_amount / shown.min_spend).astype(float)
    assert np.corrcoef(depth, shown.propensity)[0, 1] > 0.2  # deeper discounts are shown more


def test_empirical_inclusion_matches_the_propensity(dataset: dict[str, pd.DataFrame]) -> None:
    """Within a day and business type every visitor faces the same policy: the share of visits that
    show an offer is its propensity."""
    shown = dataset["impressions"].merge(dataset["customers"][["customer_id", "business_type"]], on="customer_id")
    shown["day"] = shown.shown_at.dt.date
    group = ["day", "business_type"]
    visits = shown.drop_duplicates(["customer_id", "day"]).groupby(group).size().rename("visits")
    per_offer = shown.groupby([*group, "offer_id"]).propensity.agg(["size", "min", "max"]).join(visits, on=group)
    assert np.allclose(per_offer["min"], per_offer["max"])  # one propensity per policy state
    reliable = per_offer[(per_offer["min"] >= 0.2) & (per_offer.visits >= 20)]  # never shown: too unlikely
    assert len(reliable) > 500
    expected = reliable.visits * reliable["min"]
    assert abs(reliable["size"].sum() / expected.sum() - 1) < 0.03
    band = pd.cut(reliable["min"], [0.2, 0.4, 0.6, 1.0])
    ratio = reliable["size"].groupby(band, observed=True).sum() / expected.groupby(band, observed=True).sum()
    assert ratio.between(0.93, 1.07).all()


# --- truth and events ------------------------------------------------------------------------------


def test_truth_has_one_probability_per_impression(
    dataset: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]
) -> None:
    outcomes = truth["impression_outcomes"]
    assert list(outcomes.columns) == ["impression_id", "true_probability", "label_probability"]
    assert outcomes.label_probability.between(0, 1).all()
    assert outcomes.impression_id.dtype == "int64" and outcomes.true_probability.dtype == "float64"
    assert (outcomes.impression_id.to_numpy() == dataset["impressions"].impression_id.to_numpy()).all()
    assert ((outcomes.true_probability > 0) & (outcomes.true_probability < 1)).all()


def test_redemption_rate_rises_with_the_true_probability(
    redeemed: pd.DataFrame, truth: dict[str, pd.DataFrame]
) -> None:
    shown = redeemed.merge(truth["impression_outcomes"], on="impression_id")
    decile = pd.qcut(shown.true_probability, 10, labels=False)
    rate = shown.is_redeemed.groupby(decile).mean()
    assert rate.is_monotonic_increasing or (rate.diff().dropna() > -0.01).all()
    assert rate.iloc[-1] > 5 * rate.iloc[0]
    assert abs(shown.is_redeemed.mean() - shown.true_probability.mean()) < 0.08  # roughly calibrated


def test_every_impression_has_one_view_and_events_follow_it(dataset: dict[str, pd.DataFrame]) -> None:
    events = dataset["interaction_events"].merge(dataset["impressions"], on="impression_id")
    assert set(events.event_type) == {"view", "click", "dismiss"}
    assert (events.event_at >= events.shown_at).all()
    counts = events.groupby(["impression_id", "event_type"]).size().unstack(fill_value=0)
    assert len(counts) == len(dataset["impressions"]) and (counts["view"] == 1).all()
    assert counts["click"].max() == 1 and counts["dismiss"].max() == 1
    assert not ((counts["click"] == 1) & (counts["dismiss"] == 1)).any()
    assert dataset["interaction_events"].event_at.is_monotonic_increasing


def test_clicks_follow_the_true_probability_and_precede_redemptions(
    dataset: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]
) -> None:
    world = simulate(DEFAULTS)
    events = dataset["interaction_events"]
    clicks = events[events.event_type == "click"].set_index("impression_id").event_at
    p = truth["impression_outcomes"].set_index("impression_id").true_probability
    clicked = p.index.isin(clicks.index)
    rate = pd.Series(clicked).groupby(pd.qcut(p.to_numpy(), 5, labels=False)).mean()
    assert rate.is_monotonic_increasing and rate.iloc[-1] > 3 * rate.iloc[0]

    redeemed_at = dataset["redemptions"].redeemed_at.set_axis(world.redemptions.impression + 1)
    assert 0.8 <= redeemed_at.index.isin(clicks.index).mean() <= 0.97  # most redeemers clicked first
    both = redeemed_at.index.intersection(clicks.index)
    assert (clicks[both] < redeemed_at[both]).all()


def test_label_probability_is_calibrated_to_the_seven_day_label_and_ranks_it_best(
    dataset: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]
) -> None:
    from sklearn.metrics import roc_auc_score

    shown = dataset["impressions"][["impression_id", "customer_id", "offer_id", "shown_at"]]
    pairs = shown.merge(dataset["redemptions"], on=["customer_id", "offer_id"])
    in_window = (pairs.redeemed_at >= pairs.shown_at) & (
        pairs.redeemed_at.dt.normalize() <= pairs.shown_at.dt.normalize() + pd.Timedelta(days=7)
    )
    labelled = shown.assign(label=shown.impression_id.isin(pairs.loc[in_window, "impression_id"]).astype(int))
    # Only impressions whose window closed inside the data, as the warehouse does.
    closed = labelled[labelled.shown_at.dt.normalize() + pd.Timedelta(days=8) <= labelled.shown_at.max().normalize()]
    closed = closed.merge(truth["impression_outcomes"], on="impression_id")
    assert abs(closed.label.mean() - closed.label_probability.mean()) < 0.02
    assert roc_auc_score(closed.label, closed.label_probability) > roc_auc_score(closed.label, closed.true_probability)
