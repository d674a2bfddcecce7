"""A uniqueness or not-null test of a table whose database enforces the key or NOT NULL reads no
rows (warehouse/macros/enforced_constraints.sql); without the constraint, the same test reads the
table and finds the duplicate or the null. On a copy of the session's built warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ml import data
from ml.config import Settings, dbt_target_path
from ml.features import DbtManifest
from tests.conftest import dbt, in_use, use_database


@pytest.fixture(scope="module")
def warehouse(server: Settings, built_warehouse) -> Iterator[Settings]:
    source = in_use(built_warehouse)
    yield use_database(server, "enforced_keys", template=source.database.dbname)
    in_use(built_warehouse)


def _key_tests(selection: str, kind: str = "unique") -> tuple[int, dict[str, str]]:
    """`dbt test` of `selection`: its exit code and the compiled SQL of each of its tests whose
    name holds `kind`."""
    result = dbt("test", "--select", *selection.split(), check=False)
    results = json.loads((dbt_target_path() / "run_results.json").read_text())["results"]
    return result.returncode, {
        row["unique_id"]: row["compiled_code"]
        for row in results
        if row["unique_id"].startswith("test.") and kind in row["unique_id"].split(".")[2]
    }


def _reads_no_rows(compiled: str) -> bool:
    return "false" in compiled.lower().split()


def test_a_key_the_database_enforces_is_not_read_and_one_it_does_not_is(warehouse):
    returncode, compiled = _key_tests("source:raw.order_items source:raw.impressions")
    assert returncode == 0 and len(compiled) == 2
    assert all(map(_reads_no_rows, compiled.values())), compiled
    # a view over the same rows has no key of its own: read
    returncode, compiled = _key_tests("stg_raw__order_items")
    assert returncode == 0 and compiled and not any(map(_reads_no_rows, compiled.values())), compiled

    order_items = sql.Identifier(warehouse.raw_schema, "order_items")
    with data.connect(warehouse) as conn:
        conn.execute(sql.SQL("alter table {} drop constraint order_items_pkey").format(order_items))
        conn.execute(sql.SQL("insert into {} select * from {} limit 1").format(order_items, order_items))
    returncode, compiled = _key_tests("source:raw.order_items")
    assert returncode == 1 and not any(map(_reads_no_rows, compiled.values())), compiled


def test_the_scoring_candidates_key_is_enforced_and_its_tests_read_no_rows(warehouse):
    """The model's post-hook (macros/table_constraints.sql) declares the grain; its key and
    not-null tests then cost one catalog query each, and pass."""
    returncode, unique = _key_tests("fct_scoring_candidates")
    _, not_null = _key_tests("fct_scoring_candidates", kind="not_null")
    assert returncode == 0 and len(unique) == 1 and len(not_null) == 4
    assert all(map(_reads_no_rows, [*unique.values(), *not_null.values()])), [unique, not_null]
    candidates = DbtManifest.load().relation("fct_scoring_candidates")
    with data.connect(warehouse) as conn:
        duplicate = sql.SQL("insert into {} select * from {} limit 1").format(candidates, candidates)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(duplicate)
        conn.rollback()
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(sql.SQL("update {} set has_redeemed_offer = null").format(candidates))


def test_a_not_null_column_is_not_read_and_a_nullable_one_is(warehouse):
    returncode, compiled = _key_tests("source:raw.order_items,test_name:not_null", kind="not_null")
    assert returncode == 0 and len(compiled) == 2
    assert all(map(_reads_no_rows, compiled.values())), compiled

    order_items = sql.Identifier(warehouse.raw_schema, "order_items")
    with data.connect(warehouse) as conn:
        conn.execute(sql.SQL("alter table {} drop constraint if exists order_items_pkey").format(order_items))
        conn.execute(sql.SQL("alter table {} alter column line_number drop not null").format(order_items))
        conn.execute(
            sql.SQL("update {} set line_number = null where ctid = (select min(ctid) from {})").format(
                order_items, order_items
            )
        )
    returncode, compiled = _key_tests("source:raw.order_items,test_name:not_null", kind="not_null")
    failed = {test for test, code in compiled.items() if not _reads_no_rows(code)}
    assert returncode == 1 and len(failed) == 1 and "line_number" in next(iter(failed)), compiled


def test_a_daily_build_reads_no_rows_for_an_enforced_key_and_its_recent_rows_otherwise(warehouse):
    """A daily build's tests read a model's recent rows through a filtered subquery, which has no
    constraints: the key tests of a table that enforces its key get the table itself instead."""
    daily = ["--vars", '{"as_of_date": "2024-03-01", "test_recent_days": 8}']
    result = dbt("test", "--select", "feat_customer_daily", *daily, check=False)
    assert result.returncode == 0, result.stdout[-2000:]
    results = json.loads((dbt_target_path() / "run_results.json").read_text())["results"]
    compiled = {row["unique_id"].split(".")[2]: row["compiled_code"] for row in results}
    enforced = [
        next(code for test, code in compiled.items() if test.startswith(prefix))
        for prefix in (
            "unique_combination_of_columns_feat_customer_daily_as_of_date__customer_id",
            "not_null_feat_customer_daily_as_of_date",
            "not_null_feat_customer_daily_customer_id",
        )
    ]
    assert all(_reads_no_rows(code) and "dbt_subquery" not in code for code in enforced), enforced
    # a nullable column's not-null test and the relationships test still read the recent rows alone:
    # the run date's, as the features' rows are as of it (meta recent_rows_as_of_run_date)
    for prefix in ("not_null_feat_customer_daily_monetary", "relationships_feat_customer_daily_customer_id"):
        code = next(code for test, code in compiled.items() if test.startswith(prefix))
        assert "dbt_subquery" in code and "'2024-03-01'::date - 0" in code, code
