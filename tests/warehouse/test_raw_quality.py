"""Bad data in raw: error-severity problems stop the run before training, warn-severity rows are quarantined.

The raw tables here have their constraints dropped first, as the tables of an external loader
would: offerrank's own DDL (ml/sql/raw_tables.sql) rejects most of these rows at load, and the
warehouse checks must hold without it. One database holds the test world; the warn cases insert
their rows together and share one `dbt build`; each error case inserts its rows, runs, and
removes them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ml import data, pipeline
from ml.config import Settings
from ml.data_tests import DataTestsFailed
from ml.features import DbtManifest
from orchestration import cli
from tests.conftest import dbt, drop_raw_constraints, insert_raw_rows, load_generated, use_database

# Ids far above the test world's, so the bad rows are easy to find and remove.
BAD = 9_000_000
UNKNOWN_CUSTOMER = BAD + 1


@pytest.fixture(scope="module")
def raw_db(server: Settings, generated_data, dbt_manifest) -> Iterator[tuple[Settings, psycopg.Connection]]:
    settings = use_database(server, "raw_quality")
    load_generated(settings, generated_data)
    with data.connect(settings) as conn:
        drop_raw_constraints(conn, settings.raw_schema)
        yield settings, conn


def _delete_bad_rows(conn: psycopg.Connection, settings: Settings) -> None:
    keys = {
        "orders": "order_id",
        "order_items": "line_number",
        "impressions": "impression_id",
        "redemptions": "redemption_id",
        "interaction_events": "event_id",
        "offers": "offer_id",
        "customers": "customer_id",
    }
    for table, key in keys.items():
        conn.execute(
            sql.SQL("delete from {} where {} >= %s or {} is null").format(
                sql.Identifier(settings.raw_schema, table), sql.Identifier(key), sql.Identifier(key)
            ),
            (BAD,),
        )


def _one(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row


# --- warn severity: quarantined, kept out of every feature ------------------------------------


@pytest.fixture(scope="module")
def quarantine(raw_db) -> Iterator[dict]:
    """Every warn case's rows inserted at once, then one `dbt build`; the rows are removed after."""
    settings, conn = raw_db
    now = dt.datetime.now(dt.UTC)
    # an impression old enough to be a training example, with a redemption and an event to copy
    impression_id, customer_id, offer_id, shown_at = _one(
        conn,
        "select impressions.impression_id, impressions.customer_id, impressions.offer_id, impressions.shown_at"
        " from raw.impressions as impressions"
        " inner join raw.redemptions as redemptions using (customer_id, offer_id)"
        " inner join raw.interaction_events as events using (impression_id)"
        " where impressions.shown_at < (select max(shown_at) - interval '20 days' from raw.impressions)"
        " order by impressions.impression_id limit 1",
    )
    redemption = _one(
        conn,
        "select redemption_id, redeemed_at from raw.redemptions where customer_id = %s and offer_id = %s"
        " order by redemption_id limit 1",
        (customer_id, offer_id),
    )
    event = _one(
        conn,
        "select event_id, event_type, event_at from raw.interaction_events where impression_id = %s"
        " order by event_id limit 1",
        (impression_id,),
    )
    order_id, order_customer, ordered_at = _one(
        conn, "select order_id, customer_id, ordered_at from raw.orders order by order_id limit 1"
    )
    product_id = _one(conn, "select product_id from raw.products order by product_id limit 1")[0]
    last_shown_date = _one(conn, "select max((shown_at at time zone 'UTC')::date) from raw.impressions")[0]

    def line(order: int, number: int, quantity: int, price: float) -> dict[str, object]:
        return {
            "order_id": order,
            "line_number": number,
            "product_id": product_id,
            "quantity": quantity,
            "unit_price": price,
            "is_promo": False,
        }

    def shown(id_: int, customer: int | None, at: dt.datetime) -> dict[str, object]:
        return {"impression_id": id_, "customer_id": customer, "offer_id": offer_id, "shown_at": at}

    insert_raw_rows(
        conn,
        settings,
        "order_items",
        [
            line(order_id, BAD + 1, -2, 3.5),  # negative quantity
            line(order_id, BAD + 2, 0, 3.5),  # zero quantity
            line(order_id, BAD + 3, 1, -3.5),  # negative price
            line(BAD + 10, BAD + 4, 1, 3.5),  # a line of the order of an unknown customer below
        ],
    )
    insert_raw_rows(
        conn, settings, "orders", [{"order_id": BAD + 10, "customer_id": UNKNOWN_CUSTOMER, "ordered_at": ordered_at}]
    )
    insert_raw_rows(
        conn,
        settings,
        "orders",
        [{"order_id": BAD + 11, "customer_id": order_customer, "ordered_at": now + dt.timedelta(days=2)}],
    )
    insert_raw_rows(
        conn,
        settings,
        "impressions",
        [
            shown(BAD + 1, customer_id, shown_at),  # a duplicate of the impression above
            shown(BAD + 2, UNKNOWN_CUSTOMER, shown_at),
            shown(BAD + 3, None, shown_at),  # no customer at all
            shown(BAD + 4, customer_id, now + dt.timedelta(days=3)),  # in the future
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "redemptions",
        [
            {"redemption_id": BAD + 1, "customer_id": customer_id, "offer_id": offer_id, "redeemed_at": redemption[1]},
            {
                "redemption_id": BAD + 2,
                "customer_id": customer_id,
                "offer_id": offer_id,
                "redeemed_at": now + dt.timedelta(hours=6),
            },
        ],
    )
    insert_raw_rows(
        conn,
        settings,
        "interaction_events",
        [
            {"event_id": BAD + 1, "impression_id": impression_id, "event_type": event[1], "event_at": event[2]},
            # a reaction to the duplicate impression goes with it
            {"event_id": BAD + 2, "impression_id": BAD + 1, "event_type": "click", "event_at": shown_at},
        ],
    )
    # the default selection (warehouse/selectors.yml), less the unit tests: no bad row reaches them
    build = dbt("build", "--select", "fqn:* source:*", "--exclude", "tag:reporting test_type:unit", check=False)
    try:
        yield {
            "settings": settings,
            "conn": conn,
            "build": build,
            "impression_id": impression_id,
            "redemption_id": redemption[0],
            "event_id": event[0],
            "last_shown_date": last_shown_date,
        }
    finally:
        _delete_bad_rows(conn, settings)


def _quarantined(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """The quarantined rows of `table`: the row_key's text, to its rule."""
    rows = conn.execute(
        "select row_key::text, rule_name, reason, raw_row, detected_at"
        " from staging.stg_raw__quarantined_rows where source_table = %s",
        (table,),
    ).fetchall()
    for _, rule, reason, raw_row, detected_at in rows:
        assert reason and raw_row and detected_at, rule
    return {key: rule for key, rule, *_ in rows}


def _ids_in(conn: psycopg.Connection, relation: str, column: str, ids: list[int]) -> set[int]:
    return {
        row[0]
        for row in conn.execute(
            sql.SQL("select {} from {} where {} = any(%s)").format(
                sql.Identifier(column), sql.SQL(relation), sql.Identifier(column)
            ),
            (ids,),
        )
    }


def test_the_build_passes_and_warns_that_rows_were_quarantined(quarantine):
    build = quarantine["build"]
    assert build.returncode == 0, build.stdout[-5000:]
    assert "Warning in test no_raw_rows_quarantined" in build.stdout, build.stdout[-5000:]
    assert "Got 14 results, configured to warn" in build.stdout
    # nothing of the test world itself is quarantined: only the rows inserted here
    count = _one(quarantine["conn"], "select count(*) from staging.stg_raw__quarantined_rows")[0]
    assert count == 14


def test_negative_prices_and_quantities_are_quarantined(quarantine):
    conn = quarantine["conn"]
    lines = {
        key: rule
        for key, rule in _quarantined(conn, "order_items").items()
        if re.search(rf'"line_number": {BAD + 1}\b|"line_number": {BAD + 2}\b|"line_number": {BAD + 3}\b', key)
    }
    assert sorted(lines.values()) == ["negative_price", "non_positive_quantity", "non_positive_quantity"]
    kept = conn.execute(
        "select count(*) from staging.stg_raw__order_items where line_number >= %s"
        " union all select count(*) from intermediate.int_order_items_joined where line_number >= %s",
        (BAD, BAD),
    ).fetchall()
    assert kept == [(0,), (0,)]


def test_duplicate_events_are_quarantined_and_the_first_kept(quarantine):
    conn = quarantine["conn"]
    assert _quarantined(conn, "impressions")[f'{{"impression_id": {BAD + 1}}}'] == "duplicate_event"
    assert _quarantined(conn, "redemptions")[f'{{"redemption_id": {BAD + 1}}}'] == "duplicate_event"
    events = _quarantined(conn, "interaction_events")
    assert events[f'{{"event_id": {BAD + 1}}}'] == "duplicate_event"
    assert events[f'{{"event_id": {BAD + 2}}}'] == "quarantined_impression"
    first, copy = quarantine["impression_id"], BAD + 1
    assert _ids_in(conn, "staging.stg_raw__impressions", "impression_id", [first, copy]) == {first}
    assert _ids_in(conn, "marts.fct_training_examples", "impression_id", [first, copy]) == {first}
    assert _ids_in(conn, "staging.stg_raw__redemptions", "redemption_id", [quarantine["redemption_id"], copy]) == {
        quarantine["redemption_id"]
    }
    assert _ids_in(
        conn, "staging.stg_raw__interaction_events", "event_id", [quarantine["event_id"], copy, BAD + 2]
    ) == {quarantine["event_id"]}


def test_timestamps_in_the_future_are_quarantined(quarantine):
    conn = quarantine["conn"]
    assert _quarantined(conn, "impressions")[f'{{"impression_id": {BAD + 4}}}'] == "future_timestamp"
    assert _quarantined(conn, "redemptions")[f'{{"redemption_id": {BAD + 2}}}'] == "future_timestamp"
    assert _quarantined(conn, "orders")[f'{{"order_id": {BAD + 11}}}'] == "future_timestamp"
    # kept, the future impression would have moved the run date (the day after the last impression)
    run_date = _one(conn, "select as_of_date from marts.dim_run_date")[0]
    assert run_date == quarantine["last_shown_date"] + dt.timedelta(days=1)
    assert not _ids_in(conn, "staging.stg_raw__orders", "order_id", [BAD + 11])


def test_impressions_and_orders_of_unknown_customers_are_quarantined(quarantine):
    conn = quarantine["conn"]
    impressions = _quarantined(conn, "impressions")
    assert impressions[f'{{"impression_id": {BAD + 2}}}'] == "unknown_customer"
    assert impressions[f'{{"impression_id": {BAD + 3}}}'] == "unknown_customer"  # a null customer_id
    assert _quarantined(conn, "orders")[f'{{"order_id": {BAD + 10}}}'] == "unknown_customer"
    line = f'{{"order_id": {BAD + 10}, "line_number": {BAD + 4}}}'
    assert _quarantined(conn, "order_items")[line] == "quarantined_order"
    assert not _ids_in(conn, "staging.stg_raw__impressions", "impression_id", [BAD + 2, BAD + 3])
    assert not _ids_in(conn, "marts.fct_training_examples", "impression_id", [BAD + 2, BAD + 3])
    features = _one(conn, "select count(*) from marts.feat_customer_daily where customer_id = %s", (UNKNOWN_CUSTOMER,))
    assert features == (0,)


# --- error severity: the run stops before training, naming the rule with sample rows ----------


def test_null_keys_stop_the_dbt_build_with_the_rule_and_sample_rows(raw_db):
    settings, conn = raw_db
    insert_raw_rows(
        conn,
        settings,
        "impressions",
        [{"impression_id": None, "customer_id": 1, "offer_id": 1, "shown_at": dt.datetime(2026, 5, 1, tzinfo=dt.UTC)}],
    )
    stage = pipeline.StageRun(settings, run_id="null-keys", manifest=DbtManifest.load())
    try:
        with pytest.raises(DataTestsFailed) as failed, pipeline.recorded_dbt_build(stage):
            dbt("build", "--select", "source:raw.impressions")
    finally:
        _delete_bad_rows(conn, settings)
    message = str(failed.value)
    assert "- source_not_null_raw_impressions_impression_id (not_null on source raw.impressions" in message
    assert "1 failing row" in message
    assert "impression_id=null, customer_id=1, offer_id=1, shown_at=2026-05-01" in message  # the whole row
    logged = _one(
        conn,
        sql.SQL("select status, message from {} where run_id = 'null-keys'").format(
            sql.Identifier(settings.ml_schema, "pipeline_runs")
        ),
    )
    assert logged[0] == "failed" and "source_not_null_raw_impressions_impression_id" in logged[1]


def test_offers_that_end_before_they_start_stop_the_run_before_training(raw_db, capsys):
    settings, conn = raw_db
    insert_raw_rows(
        conn,
        settings,
        "offers",
        [
            {
                "offer_id": BAD + 1,
                "category": "dairy",
                "discount_type": "percent",
                "discount_pct": 10,
                "starts_on": dt.date(2026, 6, 10),
                "ends_on": dt.date(2026, 6, 1),
            }
        ],
    )
    try:
        assert cli.main(["run"]) == 1
    finally:
        _delete_bad_rows(conn, settings)
    out = capsys.readouterr().out
    stages = out.split("stages:")[1]
    assert re.search(r"dbt_build\s+failed", stages), out
    assert "offers_end_on_or_after_they_start (expression_is_true on source raw.offers): 1 failing row" in stages
    assert f"offer_id={BAD + 1}" in stages and "starts_on=2026-06-10" in stages and "ends_on=2026-06-01" in stages
    run_id = re.search(r"^run (\S+) for", out, re.MULTILINE).group(1)
    steps = conn.execute(
        sql.SQL("select step from {} where run_id = %s").format(sql.Identifier(settings.ml_schema, "pipeline_runs")),
        (run_id,),
    ).fetchall()
    assert steps == [("dbt_build",)]  # nothing trained, scored or recommended
