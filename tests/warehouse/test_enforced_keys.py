"""A uniqueness test of a table whose database enforces the key reads no rows
(warehouse/macros/enforced_unique.sql); without the key, the same test reads the table and finds
the duplicate. On a copy of the session's built warehouse."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from psycopg import sql

from ml import data
from ml.config import Settings, dbt_target_path
from tests.conftest import dbt, use_database


@pytest.fixture(scope="module")
def warehouse(server: Settings, built_warehouse) -> Iterator[Settings]:
    source, build = built_warehouse
    assert build.returncode == 0, build.stdout[-2000:]
    yield use_database(server, "enforced_keys", template=source.database.dbname)
    os.environ["PGDATABASE"] = source.database.dbname


def _key_tests(selection: str) -> tuple[int, dict[str, str]]:
    """`dbt test` of `selection`: its exit code and the compiled SQL of each of its uniqueness tests."""
    result = dbt("test", "--select", *selection.split(), check=False)
    results = json.loads((dbt_target_path() / "run_results.json").read_text())["results"]
    return result.returncode, {
        row["unique_id"]: row["compiled_code"]
        for row in results
        if row["unique_id"].startswith("test.") and "unique" in row["unique_id"].split(".")[2]
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
