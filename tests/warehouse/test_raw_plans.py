"""The planner sees into the raw staging views (docs/performance.md, "views with import CTEs are
not flattened"): a few recent days of a dated raw table are read through the index on its UTC
date and estimated from that index's statistics (ml/contract.py), and a join through the views can
look an order's lines up by index.
Plans of the session's built warehouse, which these tests only read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ml import data
from ml.contract import RAW_CONTRACT, utc_date_index
from ml.features import DbtManifest
from tests.conftest import compiled_models, dbt, in_use, model_sql
from tests.warehouse.plans import model_plan, plan_nodes, plan_of

DATED_VIEWS = {
    "base_raw__orders": "ordered_date",
    "base_raw__impressions": "shown_date",
    "base_raw__redemptions": "redeemed_date",
    "base_raw__interaction_events": "event_date",
}
RECENT_DAYS = 3


@pytest.fixture(scope="module")
def conn(built_warehouse) -> Iterator[psycopg.Connection]:
    with data.connect(in_use(built_warehouse)) as connection:
        yield connection


def _recent_days(conn: psycopg.Connection, model: str, column: str) -> sql.Composed:
    view = DbtManifest.load().relation(model)
    return sql.SQL("select * from {} where {} >= {}").format(
        view, sql.Identifier(column), sql.Literal(_recent_days_start(conn, view, column))
    )


def _recent_days_start(conn: psycopg.Connection, view: sql.Composable, column: str) -> dt.date:
    (last,) = conn.execute(sql.SQL("select max({}) from {}").format(sql.Identifier(column), view)).fetchone()
    return last - dt.timedelta(days=RECENT_DAYS - 1)


def _compile_as_a_daily_build(conn: psycopg.Connection, select: str) -> str:
    """Compile `select` with the run parameters of a daily build whose recent days are the
    orders' last RECENT_DAYS days; returns those days' bound as the compiled SQL writes it."""
    orders = DbtManifest.load().relation("base_raw__orders")
    as_of = _recent_days_start(conn, orders, "ordered_date") + dt.timedelta(days=RECENT_DAYS)
    run_parameters = {"as_of_date": as_of.isoformat(), "test_recent_days": RECENT_DAYS}
    dbt("compile", "--select", select, "--vars", json.dumps(run_parameters))
    return f"'{as_of.isoformat()}'::date - {RECENT_DAYS}"


@pytest.mark.parametrize("model, column", DATED_VIEWS.items())
def test_the_recent_days_of_a_dated_view_are_estimated_from_statistics(conn, dbt_manifest, model, column):
    """Without statistics on the expression the planner guesses a third of the table for
    `date >= d` (PostgreSQL's default selectivity of an inequality); the world's 3 last days are
    far fewer rows."""
    view = DbtManifest.load().relation(model)
    recent = _recent_days(conn, model, column)
    (actual,) = conn.execute(sql.SQL("select count(*) from ({}) as recent").format(recent)).fetchone()
    (total,) = conn.execute(sql.SQL("select count(*) from {}").format(view)).fetchone()
    assert 0 < actual < total / 6, "the test world's last days must be a small share of its rows"
    estimated = plan_of(conn, recent)["Plan Rows"]
    assert actual / 2 <= estimated <= actual * 2, f"{model}: estimated {estimated} rows, {actual} actual"


@pytest.mark.parametrize("model, column", DATED_VIEWS.items())
def test_the_recent_days_of_a_dated_view_can_be_read_by_the_index_on_its_date(conn, dbt_manifest, model, column):
    """The view derives its date exactly as the raw table's index does, so a daily build's
    `date >= d` can read the recent days through that index: with sequential scans off, the
    plan reads the raw table by it. (An index on a differently written expression is never
    used, and PostgreSQL would scan the whole table, disabled or not.)"""
    table = model.removeprefix("base_raw__")
    (timestamp_column,) = [column.name for column in RAW_CONTRACT.table(table).columns if column.type == "timestamptz"]
    with conn.transaction(force_rollback=True):
        conn.execute("set local enable_seqscan = off")
        plan = plan_of(conn, _recent_days(conn, model, column))
    index = utc_date_index(table, timestamp_column)
    assert any(node.get("Index Name") == index for node in plan_nodes(plan)), (
        f"{model}: {table} not read by its UTC date's index: {plan}"
    )


# (the rows of the recent days, their date, the rows they look up, the key, the raw table looked up)
LOOKUPS = [
    ("stg_raw__orders", "ordered_date", "stg_raw__order_items", "order_id", "order_items"),
    ("stg_raw__interaction_events", "event_date", "stg_raw__impressions", "impression_id", "impressions"),
]


@pytest.mark.parametrize("recent_model, column, looked_up_model, key, raw_table", LOOKUPS)
def test_recent_rows_can_look_their_related_rows_up_by_index_through_the_views(
    conn, dbt_manifest, recent_model, column, looked_up_model, key, raw_table
):
    """A view with a WITH clause is planned on its own, so a join to it has no parameterized
    path into the raw table's key. With hash and merge joins off, the one way to join without
    reading every row of the other table is a nested loop into its raw table's primary key."""
    manifest = DbtManifest.load()
    recent, looked_up = manifest.relation(recent_model), manifest.relation(looked_up_model)
    joined = sql.SQL(
        "select count(*) from {recent} as recent inner join {looked_up} as looked_up"
        " on looked_up.{key} = recent.{key} where recent.{column} >= {start}"
    ).format(
        recent=recent,
        looked_up=looked_up,
        key=sql.Identifier(key),
        column=sql.Identifier(column),
        start=sql.Literal(_recent_days_start(conn, recent, column)),
    )
    with conn.transaction(force_rollback=True):
        conn.execute("set local enable_hashjoin = off")
        conn.execute("set local enable_mergejoin = off")
        plan = plan_of(conn, joined)
    # a lookup by the other side's key (`order_id = orders.order_id`), not an index read in full
    lookup_condition = re.compile(rf"\({key} = \w+\.{key}\)")
    lookups = [
        node
        for node in plan_nodes(plan)
        if node.get("Relation Name") == raw_table and lookup_condition.search(node.get("Index Cond", ""))
    ]
    assert lookups, f"no index lookup of {raw_table}: {plan}"


def test_a_daily_build_reads_the_recent_orders_lines_by_their_key(conn, dbt_manifest):
    """An order line has no date: a daily build tests the lines of the recent orders
    (macros/recent_rows.sql, recent_rows_of_parent). It looks them up by the lines' key, orders
    first, and does not read every line of every order to keep those of the recent ones."""
    recent_days_bound = _compile_as_a_daily_build(conn, "base_raw__order_items,test_name:unique_combination_of_columns")
    compiled_dir = compiled_models() / "staging" / "raw" / "_raw__models.yml"
    compiled_tests = [path.read_text() for path in compiled_dir.glob("unique_combination_of_columns_*.sql")]
    (compiled,) = [test for test in compiled_tests if "base_raw__order_items" in test]
    assert recent_days_bound in compiled, compiled
    plan = plan_of(conn, sql.SQL(compiled))
    scans = [
        (node["Node Type"], node.get("Index Name"))
        for node in plan_nodes(plan)
        if node.get("Relation Name") == "order_items"
    ]
    assert scans and all(node_type != "Seq Scan" for node_type, _ in scans), f"every order line read: {plan}"


def test_the_quarantines_daily_check_looks_the_recent_orders_lines_up_by_key(conn, dbt_manifest):
    """The quarantine's daily check reads the lines of its recent orders by the lines' key, under
    the model's own settings (its pre-hook), and does not keep them out of every order line: the
    planner sees the recent orders' count through their date's statistics, and takes the raw
    pages for cached (docs/performance.md, "the quarantine looks the recent orders' lines up")."""
    recent_days_bound = _compile_as_a_daily_build(conn, "stg_raw__quarantined_rows")
    compiled = model_sql("staging/raw", "stg_raw__quarantined_rows")
    assert recent_days_bound in compiled, "not a daily check"
    plan = model_plan(conn, dbt_manifest, "stg_raw__quarantined_rows", compiled)
    by_order = re.compile(r"\(order_id = \w+\.order_id\)")
    lookups = [
        node
        for node in plan_nodes(plan)
        if node.get("Relation Name") == "order_items" and by_order.search(node.get("Index Cond", ""))
    ]
    assert lookups, f"the recent orders' lines are not looked up by key: {plan}"
    # a materialized CTE has no statistics: at 100k customers its lines were estimated at 1.6M, not
    # 0.6M, and read in full whatever the page cost
    assert not [node for node in plan_nodes(plan) if node.get("CTE Name") == "orders"], (
        "the recent orders are a CTE scan"
    )
