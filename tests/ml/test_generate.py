"""Tests of the synthetic data generator: the raw-table contract, determinism and the planted signal."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from ml.generate import BUSINESS_TYPES, GeneratorParams, generate_dataset, simulate

RAW_TABLES_SQL = Path(__file__).resolve().parents[2] / "ml" / "sql" / "raw_tables.sql"
LOAD_ORDER = ["customers", "products", "orders", "order_items", "offers", "impressions", "redemptions"]
SMALL = GeneratorParams(customers=300, products=40, offers=20, days=45, seed=7)
DEFAULTS = GeneratorParams()
DAY = pd.Timedelta(days=1)


def _contract() -> dict[str, list[tuple[str, str, bool]]]:
    """(column, SQL type, not null) per table, in DDL order, parsed from raw_tables.sql."""
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for name, body in re.findall(
        r"create table if not exists \{schema\}\.(\w+) \((.*?)\n\);", RAW_TABLES_SQL.read_text(), re.S
    ):
        columns = []
        for line in body.splitlines():
            line = line.split("--")[0].strip()
            if not line or line.startswith("primary key"):
                continue
            column, sql_type = line.rstrip(",").split()[:2]
            columns.append((column, sql_type.split("(")[0], "not null" in line or "primary key" in line))
        tables[name] = columns
    return tables


def _primary_keys() -> dict[str, list[str]]:
    text = RAW_TABLES_SQL.read_text()
    keys = {}
    for name, body in re.findall(r"\{schema\}\.(\w+) \((.*?)\n\);", text, re.S):
        compound = re.search(r"primary key \(([^)]*)\)", body)
        if compound:
            keys[name] = [c.strip() for c in compound.group(1).split(",")]
        else:
            keys[name] = [line.split()[0] for line in body.splitlines() if "primary key" in line]
    return keys


@pytest.fixture(scope="module")
def dataset() -> dict[str, pd.DataFrame]:
    return generate_dataset(DEFAULTS)


@pytest.fixture(scope="module")
def redeemed(dataset: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Impressions with `is_redeemed`: the same customer redeemed the offer within 14 days after it."""
    impressions, redemptions = dataset["impressions"], dataset["redemptions"]
    pairs = impressions.merge(redemptions, on=["customer_id", "offer_id"], how="inner")
    hit = pairs[(pairs.redeemed_at > pairs.shown_at) & (pairs.redeemed_at <= pairs.shown_at + 14 * DAY)]
    return impressions.assign(is_redeemed=impressions.impression_id.isin(hit.impression_id))


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    first, second = generate_dataset(SMALL), generate_dataset(SMALL)
    assert list(first) == LOAD_ORDER == list(second)
    for table in LOAD_ORDER:
        pd.testing.assert_frame_equal(first[table], second[table])


def test_different_seed_gives_different_frames() -> None:
    first = generate_dataset(SMALL)
    other = generate_dataset(GeneratorParams(customers=300, products=40, offers=20, days=45, seed=8))
    for table in ["customers", "orders", "impressions"]:
        assert not first[table].equals(other[table]), table


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        GeneratorParams(products=5)
    with pytest.raises(ValueError):
        GeneratorParams(days=0)


# --- the contract ----------------------------------------------------------------------------------


def test_columns_and_dtypes_match_the_ddl(dataset: dict[str, pd.DataFrame]) -> None:
    contract = _contract()
    assert list(contract) == LOAD_ORDER
    expected = {"bigint": "int64", "smallint": "int16", "integer": "int32", "numeric": "float64", "boolean": "bool"}
    for table, columns in contract.items():
        frame = dataset[table]
        assert list(frame.columns) == [column for column, _, _ in columns], table
        for column, sql_type, not_null in columns:
            series = frame[column]
            if sql_type == "bigint" and not not_null:
                assert series.dtype == "Int64", (table, column)
            elif sql_type in expected:
                assert series.dtype == expected[sql_type], (table, column, series.dtype)
            elif sql_type == "text":
                assert pd.api.types.is_string_dtype(series.dtype), (table, column)
            elif sql_type == "timestamptz":
                assert str(series.dtype) == "datetime64[ns, UTC]", (table, column)
            elif sql_type == "date":
                assert series.dtype == object
                assert all(type(value) is dt.date for value in series), (table, column)
            else:
                raise AssertionError(f"unexpected type {sql_type} of {table}.{column}")
            if not_null:
                assert series.notna().all(), (table, column)


def test_primary_keys_are_unique(dataset: dict[str, pd.DataFrame]) -> None:
    for table, key in _primary_keys().items():
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


def test_products_hold_their_invariants(dataset: dict[str, pd.DataFrame]) -> None:
    products = dataset["products"]
    assert products.price_tier.between(1, 3).all()
    assert (products.unit_cost > 0).all() and (products.unit_cost < products.unit_price).all()
    assert 8 <= products.category.nunique() <= 12
    fresh_share = products.groupby("category").is_fresh.mean()
    assert fresh_share.max() > 0.5 and fresh_share.min() == 0  # freshness depends on the category
    by_tier = products.groupby("price_tier").unit_price.median()
    assert by_tier.is_monotonic_increasing


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
    assert rounded(offers.discount_pct, 2) and rounded(offers.margin_impact, 4)


def test_offers_hold_their_invariants(dataset: dict[str, pd.DataFrame]) -> None:
    offers = dataset["offers"]
    assert ((offers.discount_pct > 0) & (offers.discount_pct < 100)).all()
    assert offers.discount_pct.between(5, 40).all()
    assert offers.margin_impact.between(0, 1).all()
    assert (offers.ends_on >= offers.starts_on).all()
    duration = offers.ends_on.map(dt.date.toordinal) - offers.starts_on.map(dt.date.toordinal) + 1
    assert duration.between(7, 28).all()
    assert not (offers.product_id.notna() & offers.category.notna()).any()
    kind = np.select([offers.product_id.notna(), offers.category.notna()], ["product", "category"], "store")
    assert set(kind) == {"product", "category", "store"}
    assert set(offers.target_business_type.dropna()) <= {bt.name for bt in BUSINESS_TYPES}
    assert 0.05 < offers.target_business_type.notna().mean() < 0.4
    deeper = offers.discount_pct > offers.discount_pct.median()
    assert offers.margin_impact[deeper].mean() > offers.margin_impact[~deeper].mean()


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
    assert per_visit.max() <= 5
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


# --- loading ---------------------------------------------------------------------------------------


def test_frames_serialise_for_copy(dataset: dict[str, pd.DataFrame]) -> None:
    """Dates come out as YYYY-MM-DD and missing values as empty fields, as `ml.data.copy_in` writes them."""
    for table in ["customers", "offers", "impressions"]:
        buffer = io.BytesIO()
        frame = dataset[table].head(50)
        pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        parsed = pd.read_csv(io.BytesIO(buffer.getvalue()), keep_default_na=False, dtype=str)
        for column in ["signup_date", "starts_on", "ends_on"]:
            if column in parsed:
                assert parsed[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all(), column
        if table == "offers":
            assert (parsed.product_id == "").sum() == frame.product_id.isna().sum()
