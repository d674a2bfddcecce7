"""A daily build checks again the raw rows of its recent days, and keeps the verdicts on older rows.

stg_raw__quarantined_rows on a daily build (run parameters as_of_date and test_recent_days) must find, for
every row of its recent days and every row of no day, what a full check finds, through the
earlier verdicts on older parents too; it rewrites no other verdict. A row older than its days
that arrives late waits for the next full check: that bound is asserted here, as documented.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import psycopg
import pytest

from ml import data
from ml.config import Settings
from orchestration.dbt_builds import run_parameters
from tests.conftest import dbt, drop_raw_constraints, insert_raw_rows, load_generated, use_database

BAD = 9_100_000
UNKNOWN_CUSTOMER = BAD + 99
RECENT_DAYS = 8

Verdicts = set[tuple[str, str, str, dt.date | None]]


@pytest.fixture(scope="module")
def world(server: Settings, generated_data) -> Iterator[tuple[Settings, psycopg.Connection, dt.date]]:
    settings = use_database(server, "quarantine_daily")
    load_generated(settings, generated_data)
    run_date = generated_data["impressions"]["shown_at"].max().date() + dt.timedelta(days=1)
    with data.connect(settings) as conn:
        drop_raw_constraints(conn, settings.raw_schema)
        yield settings, conn, run_date


def _at(run_date: dt.date, days_before: int) -> dt.datetime:
    return dt.datetime.combine(run_date, dt.time(12), dt.UTC) - dt.timedelta(days=days_before)


def _check(run_date: dt.date, *flags: str, recent_days: int | None = None) -> None:
    """A full check, the run date given as a var; or a daily one (`recent_days`), with the run
    parameters in the environment as the Dagster asset passes them (orchestration/dbt_builds.py)."""
    if recent_days is None:
        dbt("run", "--select", "stg_raw__quarantined_rows", *flags, "--vars", json.dumps({"as_of_date": str(run_date)}))
        return
    with pytest.MonkeyPatch.context() as environment:
        for name, value in run_parameters(run_date, recent_days).items():
            environment.setenv(name, value)
        dbt("run", "--select", "stg_raw__quarantined_rows", *flags)


def _verdicts(conn: psycopg.Connection) -> Verdicts:
    return set(
        conn.execute(
            "select source_table, row_key::text, rule_name, row_date from staging.stg_raw__quarantined_rows"
        ).fetchall()
    )


def _row_version(conn: psycopg.Connection, table: str, key: dict[str, int]) -> str:
    row = conn.execute(
        "select xmin::text from staging.stg_raw__quarantined_rows where source_table = %s and row_key = %s::jsonb",
        (table, json.dumps(key)),
    ).fetchone()
    assert row is not None, (table, key)
    return row[0]


def _some(conn: psycopg.Connection, query: str, params: tuple) -> tuple:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row


def test_a_daily_build_finds_what_a_full_check_finds_in_its_days(world):
    settings, conn, run_date = world
    customer = _some(conn, "select customer_id from raw.customers order by customer_id limit 1", ())[0]
    offer = _some(conn, "select offer_id from raw.offers order by offer_id limit 1", ())[0]
    product = _some(conn, "select product_id from raw.products order by product_id limit 1", ())[0]

    def line(order: int, number: int, quantity: int = 1) -> dict[str, object]:
        return {
            "order_id": order,
            "line_number": number,
            "product_id": product,
            "quantity": quantity,
            "unit_price": 2.5,
            "is_promo": False,
        }

    # Found by the first build, a full check: an old quarantined order with its line, an old
    # impression of an unknown customer, and a recent order whose customer is loaded later.
    insert_raw_rows(
        conn,
        settings,
        "orders",
        [
            {"order_id": BAD + 1, "customer_id": UNKNOWN_CUSTOMER, "ordered_at": _at(run_date, 30)},
            {"order_id": BAD + 2, "customer_id": BAD + 50, "ordered_at": _at(run_date, 2)},
        ],
    )
    insert_raw_rows(conn, settings, "order_items", [line(BAD + 1, 1)])
    insert_raw_rows(
        conn,
        settings,
        "impressions",
        [
            {
                "impression_id": BAD + 1,
                "customer_id": UNKNOWN_CUSTOMER,
                "offer_id": offer,
                "shown_at": _at(run_date, 10),
            },
        ],
    )
    dbt("run", "--select", "+stg_raw__quarantined_rows", "--vars", json.dumps({"as_of_date": run_date.isoformat()}))
    first = _verdicts(conn)
    old_order = _row_version(conn, "orders", {"order_id": BAD + 1})

    # Then, before the daily build: the late customer, and new rows of the recent days or of no day.
    insert_raw_rows(conn, settings, "customers", [{"customer_id": BAD + 50, "business_type": "retail"}])
    recent_order = _some(
        conn, "select order_id from raw.orders where ordered_at >= %s order by order_id limit 1", (_at(run_date, 3),)
    )[0]
    duplicate = _some(
        conn,
        "select customer_id, offer_id, shown_at from raw.impressions"
        " where shown_at >= %s order by impression_id limit 1",
        (_at(run_date, 3),),
    )
    old_order_id = _some(conn, "select order_id from raw.orders where ordered_at < %s limit 1", (_at(run_date, 40),))[0]
    insert_raw_rows(
        conn,
        settings,
        "orders",
        [
            {"order_id": BAD + 3, "customer_id": UNKNOWN_CUSTOMER, "ordered_at": _at(run_date, 1)},
            {"order_id": BAD + 4, "customer_id": customer, "ordered_at": None},
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "order_items",
        [
            line(BAD + 3, 1),  # of a quarantined recent order
            line(recent_order, BAD + 1, quantity=-1),
            line(BAD + 10, 1),  # of no order
            line(old_order_id, BAD + 2, quantity=0),  # late: of an order older than the recent days
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "impressions",
        [
            dict(zip(("customer_id", "offer_id", "shown_at"), duplicate, strict=True), impression_id=BAD + 2),
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "interaction_events",
        [
            # a reaction, in the recent days, to the old quarantined impression: its earlier verdict counts
            {"event_id": BAD + 1, "impression_id": BAD + 1, "event_type": "click", "event_at": _at(run_date, 6)},
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "redemptions",
        [
            {
                "redemption_id": BAD + 1,
                "customer_id": customer,
                "offer_id": offer,
                "redeemed_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
            },
        ],
    )

    _check(run_date, recent_days=RECENT_DAYS)
    daily = _verdicts(conn)
    assert _row_version(conn, "orders", {"order_id": BAD + 1}) == old_order, "an old verdict was rewritten"

    _check(run_date, "--full-refresh")
    full = _verdicts(conn)
    late = ("order_items", json.dumps({"order_id": old_order_id, "line_number": BAD + 2}), "non_positive_quantity")
    assert {verdict[:3] for verdict in full - daily} == {late}
    assert daily - full == set()
    rules = {(table, key): rule for table, key, rule, _ in daily}
    assert rules == {
        ("orders", json.dumps({"order_id": BAD + 1})): "unknown_customer",
        ("order_items", json.dumps({"order_id": BAD + 1, "line_number": 1})): "quarantined_order",
        ("impressions", json.dumps({"impression_id": BAD + 1})): "unknown_customer",
        ("orders", json.dumps({"order_id": BAD + 3})): "unknown_customer",
        ("orders", json.dumps({"order_id": BAD + 4})): "missing_timestamp",
        ("order_items", json.dumps({"order_id": BAD + 3, "line_number": 1})): "quarantined_order",
        ("order_items", json.dumps({"order_id": recent_order, "line_number": BAD + 1})): "non_positive_quantity",
        ("order_items", json.dumps({"order_id": BAD + 10, "line_number": 1})): "unknown_order",
        ("impressions", json.dumps({"impression_id": BAD + 2})): "duplicate_event",
        ("interaction_events", json.dumps({"event_id": BAD + 1})): "quarantined_impression",
        ("redemptions", json.dumps({"redemption_id": BAD + 1})): "future_timestamp",
    }
    # the recent order whose customer arrived was released; the first build had held it
    assert ("orders", json.dumps({"order_id": BAD + 2}), "unknown_customer", run_date - dt.timedelta(days=2)) in first

    # A quarantine table built before row_date existed is checked in full once, and gains the column.
    conn.execute("alter table staging.stg_raw__quarantined_rows drop column row_date")
    _check(run_date, recent_days=RECENT_DAYS)
    assert _verdicts(conn) == full
