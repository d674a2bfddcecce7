"""The raw data contract: the DDL it generates, and every kind of problem the loader reports.

Pure tests: small hand-written files in tmp_path, no database."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from ml import contract, load
from ml.contract import RAW_CONTRACT
from ml.generate import GeneratorParams, generate_dataset

RAW_TABLES_SQL = Path(__file__).resolve().parents[2] / "ml" / "sql" / "raw_tables.sql"

# The smallest valid data: required tables, required columns only (plus discount_pct, which a
# percent offer needs).
VALID = {
    "customers": "customer_id\n1\n2\n",
    "products": "product_id,category,unit_price\n10,dairy,2.50\n",
    "orders": "order_id,customer_id,ordered_at\n100,1,2026-01-01T10:00:00+02:00\n101,2,2026-01-02 09:00:00\n",
    "offers": "offer_id,discount_pct,starts_on,ends_on\n7,10,2026-01-01,2026-01-31\n",
    "impressions": "impression_id,customer_id,offer_id,shown_at\n1000,1,7,2026-01-02T10:00:00Z\n",
    "redemptions": "redemption_id,customer_id,offer_id,redeemed_at\n5000,1,7,2026-01-03T10:00:00Z\n",
}


def write(directory: Path, tables: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for table, text in tables.items():
        (directory / f"{table}.csv").write_text(text)
    return directory


def problems_of(directory: Path) -> str:
    with pytest.raises(load.ContractError) as caught:
        load.validate(load.read_directory(directory))
    return str(caught.value)


def with_changes(tmp_path: Path, **tables: str | None) -> Path:
    """VALID with some tables replaced (text) or removed (None), written to tmp_path/data."""
    files = {**VALID, **tables}
    return write(tmp_path / "data", {name: text for name, text in files.items() if text is not None})


def assert_reported(message: str, file: str, row: int | None, column: str | None, reason: str) -> None:
    where = ", ".join([file] + ([f"row {row}"] if row else []) + ([f"column {column}"] if column else []))
    lines = [line.strip() for line in message.splitlines()]
    assert any(line.startswith(f"{where}: ") and reason in line for line in lines), message


# --- the DDL ------------------------------------------------------------------------------------------


def test_raw_tables_sql_is_the_generated_ddl():
    assert RAW_TABLES_SQL.read_text() == contract.ddl(), "regenerate: python -m ml.contract > ml/sql/raw_tables.sql"


def test_ddl_declares_each_column_key_and_check_of_the_contract():
    blocks = dict(re.findall(r"create table if not exists \{schema\}\.(\w+) \((.*?)\n\);", contract.ddl(), re.S))
    assert list(blocks) == list(RAW_CONTRACT.table_names)
    for table in RAW_CONTRACT.tables:
        lines = [line.strip().rstrip(",") for line in blocks[table.name].strip().splitlines()]
        assert lines[-1] == f"primary key ({', '.join(table.primary_key)})"
        for line, column in zip(lines[:-1], table.columns, strict=True):
            assert line.startswith(f"{column.name} {column.type}")
            assert bool(re.match(rf"{column.name} {re.escape(column.type)} not null", line)) == column.required, line
            assert line.count("check (") == len(column.checks), line
    offers = blocks["offers"]
    assert "check (ends_on >= starts_on)" in offers
    assert "check (coalesce(discount_type, 'percent') <> 'percent' or discount_pct is not null)" in offers
    assert "check (discount_type in ('percent', 'fixed'))" in offers


def test_optional_tables_and_columns_are_the_drafted_ones():
    optional_tables = {t.name for t in RAW_CONTRACT.tables if not t.required}
    assert optional_tables == {"order_items", "interaction_events"}
    required = {t.name: [c.name for c in t.columns if c.required] for t in RAW_CONTRACT.tables}
    assert required["customers"] == ["customer_id"]
    assert required["products"] == ["product_id", "category", "unit_price"]
    assert required["offers"] == ["offer_id", "starts_on", "ends_on"]


# --- reading a directory ----------------------------------------------------------------------------


def test_valid_directory_passes_and_is_typed(tmp_path):
    frames = load.conform(load.read_directory(with_changes(tmp_path)))
    assert set(frames) == set(VALID)
    orders = frames["orders"]
    # An offset is honoured; a timestamp without one is taken as UTC.
    assert orders["ordered_at"].tolist() == [
        pd.Timestamp("2026-01-01T08:00:00Z"),
        pd.Timestamp("2026-01-02T09:00:00Z"),
    ]
    assert list(frames["products"].columns) == ["product_id", "category", "unit_price"]  # only the columns given


def test_unknown_file_is_named(tmp_path):
    directory = with_changes(tmp_path)
    (directory / "customer.csv").write_text("customer_id\n1\n")
    assert_reported(problems_of(directory), "customer.csv", None, None, "unknown file")


def test_a_table_in_both_formats_is_refused(tmp_path):
    directory = with_changes(tmp_path)
    pd.DataFrame({"customer_id": [1, 2]}).to_parquet(directory / "customers.parquet")
    assert_reported(problems_of(directory), "customers.csv and customers.parquet", None, None, "given twice")


def test_parquet_rows_count_from_one(tmp_path):
    directory = with_changes(tmp_path, customers=None)
    pd.DataFrame({"customer_id": [1, 2, 2]}).to_parquet(directory / "customers.parquet")
    assert_reported(problems_of(directory), "customers.parquet", 3, "customer_id", "also at row 2")


# --- one test per kind of problem ----------------------------------------------------------------------


def test_missing_required_table(tmp_path):
    message = problems_of(with_changes(tmp_path, redemptions=None))
    assert_reported(message, "redemptions.csv or redemptions.parquet", None, None, "required table missing")


def test_missing_optional_table_is_fine(tmp_path):
    assert "order_items" not in load.conform(load.read_directory(with_changes(tmp_path)))


def test_missing_required_column(tmp_path):
    message = problems_of(with_changes(tmp_path, products="product_id,unit_price\n10,2.50\n"))
    assert_reported(message, "products.csv", None, "category", "required column missing")


def test_unknown_column(tmp_path):
    message = problems_of(with_changes(tmp_path, customers="customer_id,regoin\n1,north\n2,south\n"))
    assert_reported(message, "customers.csv", None, "regoin", "unknown column")


@pytest.mark.parametrize(
    ("table", "text", "row", "column", "reason"),
    [
        ("customers", "customer_id\n1\n2x\n", 3, "customer_id", "not an integer: '2x'"),
        ("products", "product_id,category,unit_price\n10,dairy,two\n", 2, "unit_price", "not a number: 'two'"),
        (
            "offers",
            "offer_id,discount_pct,starts_on,ends_on\n7,10,2026-01-01,31/01/2026\n",
            2,
            "ends_on",
            "not a date (YYYY-MM-DD): '31/01/2026'",
        ),
        (
            "orders",
            "order_id,customer_id,ordered_at\n100,1,2026-01-01T10:00:00Z\n101,2,yesterday\n",
            3,
            "ordered_at",
            "not a timestamp",
        ),
        (
            "products",
            "product_id,category,unit_price,is_fresh\n10,dairy,2.50,maybe\n",
            2,
            "is_fresh",
            "not a boolean (true/false): 'maybe'",
        ),
        (
            "products",
            "product_id,category,unit_price,price_tier\n10,dairy,2.50,99999\n",
            2,
            "price_tier",
            "out of range",
        ),
    ],
)
def test_value_of_the_wrong_type(tmp_path, table, text, row, column, reason):
    assert_reported(problems_of(with_changes(tmp_path, **{table: text})), f"{table}.csv", row, column, reason)


def test_null_in_a_required_column(tmp_path):
    message = problems_of(with_changes(tmp_path, products="product_id,category,unit_price\n10,,2.50\n"))
    assert_reported(message, "products.csv", 2, "category", "missing value")


@pytest.mark.parametrize(
    ("table", "text", "row", "column", "reason"),
    [
        ("products", "product_id,category,unit_price\n10,dairy,0\n", 2, "unit_price", "must be > 0, got 0.0"),
        (
            "products",
            "product_id,category,unit_price,price_tier\n10,dairy,1,4\n",
            2,
            "price_tier",
            "must be >= 1 and <= 3, got 4",
        ),
        (
            "offers",
            "offer_id,discount_type,discount_pct,starts_on,ends_on\n7,coupon,10,2026-01-01,2026-01-31\n",
            2,
            "discount_type",
            "must be one of percent, fixed, got 'coupon'",
        ),
        (
            "offers",
            "offer_id,discount_pct,starts_on,ends_on\n7,10,2026-01-31,2026-01-01\n",
            2,
            "ends_on",
            "must not be before starts_on, got 2026-01-01",
        ),
        (
            "offers",
            "offer_id,discount_pct,starts_on,ends_on\n7,,2026-01-01,2026-01-31\n",
            2,
            "discount_pct",
            "is required when discount_type is 'percent' or empty",
        ),
        (
            "offers",
            "offer_id,discount_type,reward_amount,starts_on,ends_on\n7,fixed,,2026-01-01,2026-01-31\n",
            2,
            "reward_amount",
            "is required when discount_type is 'fixed'",
        ),
    ],
)
def test_check_violations(tmp_path, table, text, row, column, reason):
    assert_reported(problems_of(with_changes(tmp_path, **{table: text})), f"{table}.csv", row, column, reason)


def test_duplicate_primary_key_names_both_rows(tmp_path):
    message = problems_of(with_changes(tmp_path, customers="customer_id\n1\n2\n1\n"))
    assert_reported(message, "customers.csv", 4, "customer_id", "duplicate primary key (customer_id=1), also at row 2")


def test_foreign_key_without_parent(tmp_path):
    orders = "order_id,customer_id,ordered_at\n100,1,2026-01-01T10:00:00Z\n101,9,2026-01-01T10:00:00Z\n"
    message = problems_of(with_changes(tmp_path, orders=orders))
    assert_reported(message, "orders.csv", 3, "customer_id", "customer_id=9 is not in customers")


def test_redemption_before_the_first_impression(tmp_path):
    redemptions = "redemption_id,customer_id,offer_id,redeemed_at\n5000,1,7,2026-01-02T09:59:59Z\n"
    message = problems_of(with_changes(tmp_path, redemptions=redemptions))
    assert_reported(
        message, "redemptions.csv", 2, "redeemed_at", "2026-01-02T09:59:59Z is before the earliest impressions.shown_at"
    )


def test_redemption_without_any_impression_of_the_offer(tmp_path):
    redemptions = "redemption_id,customer_id,offer_id,redeemed_at\n5000,2,7,2026-01-03T10:00:00Z\n"
    message = problems_of(with_changes(tmp_path, redemptions=redemptions))
    assert_reported(
        message, "redemptions.csv", 2, "redeemed_at", "no row in impressions with customer_id=2, offer_id=7"
    )


def test_event_before_its_impression(tmp_path):
    events = (
        "event_id,impression_id,event_type,event_at\n"
        "1,1000,click,2026-01-02T10:00:01Z\n"
        "2,1000,view,2026-01-02T09:00:00Z\n"
    )
    message = problems_of(with_changes(tmp_path, interaction_events=events))
    assert_reported(message, "interaction_events.csv", 3, "event_at", "is before the earliest impressions.shown_at")


def test_many_problems_are_capped_with_a_count(tmp_path):
    customers = "customer_id\n1\n2\n" + "".join(f"x{i}\n" for i in range(100))
    message = problems_of(with_changes(tmp_path, customers=customers))
    assert "100 problems" in message
    assert message.rstrip().endswith(f"and {100 - load.MAX_LINES_PER_CHECK} more")
    assert len(message.splitlines()) <= load.MAX_LINES + 2


def test_parquet_files_with_native_types_conform(tmp_path):
    typed = load.conform(load.read_directory(with_changes(tmp_path / "csv")))
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    for table, frame in typed.items():
        frame.to_parquet(parquet / f"{table}.parquet")
    again = load.conform(load.read_directory(parquet))
    for table, frame in typed.items():
        pd.testing.assert_frame_equal(again[table], frame, check_dtype=False)


def test_generated_data_follows_the_contract():
    load.validate(generate_dataset(GeneratorParams(customers=150, products=40, offers=12, days=40, seed=5)))


def test_the_contract_page_documents_every_table_and_column():
    page = (Path(__file__).resolve().parents[2] / "docs" / "data-contract.md").read_text()
    for table in RAW_CONTRACT.tables:
        assert f"### {table.name}" in page
        for column in table.columns:
            assert f"| {column.name} | {column.type} | {'req' if column.required else 'opt'} |" in page
