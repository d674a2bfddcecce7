"""A daily build's data tests read the rows it wrote (warehouse/macros/recent_rows.sql); a build
without `test_recent_days` tests every row. On a copy of the session's built warehouse, with a
feature value out of its range, then a duplicated order line, planted on an old day, then on a
recent one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from psycopg import sql

from ml import data
from ml.config import Settings
from ml.features import RUN_DATE_MODEL, DbtManifest
from orchestration.dbt_builds import DAILY_TESTED_DAYS, features_build
from tests.conftest import dbt, in_use, use_database

TESTED = "feat_customer_daily"


@pytest.fixture(scope="module")
def warehouse(server: Settings, built_warehouse) -> Iterator[tuple[Settings, dt.date]]:
    source = in_use(built_warehouse)
    settings = use_database(server, "recent_rows", template=source.database.dbname)
    with data.connect(settings) as conn:
        relation = DbtManifest.load().relation(RUN_DATE_MODEL)
        (run_date,) = conn.execute(sql.SQL("select as_of_date from {}").format(relation)).fetchone()
    yield settings, run_date
    in_use(built_warehouse)


def _break_a_row(settings: Settings, as_of: dt.date) -> None:
    """A share above 1 on day `as_of`: its accepted_range test fails where it reads that day."""
    table = DbtManifest.load().relation(TESTED)
    with data.connect(settings) as conn:
        conn.execute(
            sql.SQL(
                "update {} set tier3_purchase_ratio = 2 where as_of_date = %s"
                " and customer_id = (select min(customer_id) from {} where as_of_date = %s)"
            ).format(table, table),
            (as_of, as_of),
        )


def _test_features(variables: dict[str, object]) -> int:
    return dbt("test", "--select", TESTED, "--vars", json.dumps(variables), check=False).returncode


def test_a_daily_build_tests_its_own_days_and_a_full_test_every_day(warehouse, dbt_manifest):
    """feat_customer_daily's rows are as of the run date (meta recent_rows_as_of_run_date): a daily
    build writes the run date alone, and after missed days the dates it fills in, and its tests
    read those dates, not those earlier builds wrote and tested."""
    settings, run_date = warehouse
    daily = {"as_of_date": run_date.isoformat(), "test_recent_days": DAILY_TESTED_DAYS}
    after_two_missed_days = {**daily, "test_recent_days": DAILY_TESTED_DAYS + 2}
    assert _test_features(daily) == 0
    _break_a_row(settings, run_date - dt.timedelta(days=1))
    assert _test_features(daily) == 0  # the day before the run date is not read again
    assert _test_features(after_two_missed_days) == 1  # unless this build wrote it
    assert _test_features({"as_of_date": run_date.isoformat()}) == 1
    _break_a_row(settings, run_date)
    assert _test_features(daily) == 1


def test_an_order_s_lines_are_tested_with_their_order_s_day(warehouse, dbt_manifest):
    """Order lines have no date: base_raw__order_items' meta `recent_rows_parent` scopes its tests
    through base_raw__orders' ordered_date. A duplicated line is seen by the daily build's uniqueness
    test only when its order is recent, and by a full test always."""
    settings, run_date = warehouse
    daily = {"as_of_date": run_date.isoformat(), "test_recent_days": DAILY_TESTED_DAYS}
    order_items, orders = (sql.Identifier(settings.raw_schema, table) for table in ("order_items", "orders"))

    def test_lines(variables: dict[str, object]) -> int:
        selection = "base_raw__order_items,test_name:unique_combination_of_columns"
        return dbt("test", "--select", selection, "--vars", json.dumps(variables), check=False).returncode

    def duplicate_a_line_ordered_on(day: dt.date) -> None:
        with data.connect(settings) as conn:
            (order_id,) = conn.execute(
                sql.SQL(
                    "select min(order_id) from {} where (ordered_at at time zone 'UTC')::date = %s"
                    " and order_id in (select order_id from {})"
                ).format(orders, order_items),
                (day,),
            ).fetchone()
            conn.execute(
                sql.SQL("insert into {} select * from {} where order_id = %s limit 1").format(order_items, order_items),
                (order_id,),
            )

    with data.connect(settings) as conn:  # without the key, the uniqueness test reads the rows
        conn.execute(sql.SQL("alter table {} drop constraint order_items_pkey").format(order_items))
    assert test_lines(daily) == 0
    duplicate_a_line_ordered_on(run_date - dt.timedelta(days=30))
    assert test_lines(daily) == 0  # an old order's lines are not read again
    assert test_lines({"as_of_date": run_date.isoformat()}) == 1
    duplicate_a_line_ordered_on(run_date - dt.timedelta(days=1))
    assert test_lines(daily) == 1


def test_test_recent_days_must_be_a_number_of_days_with_a_run_date(warehouse):
    _, run_date = warehouse
    result = dbt("test", "--select", TESTED, "--vars", json.dumps({"test_recent_days": 8}), check=False)
    assert result.returncode == 2 and "needs as_of_date" in result.stdout
    result = dbt(
        "test",
        "--select",
        TESTED,
        "--vars",
        json.dumps({"as_of_date": str(run_date), "test_recent_days": "a week"}),
        check=False,
    )
    assert result.returncode == 2 and "whole number of days" in result.stdout


def test_a_build_tests_from_the_first_date_it_adds():
    def tested_days(**build: object) -> str:
        return features_build(dt.date(2026, 7, 1), **build).run_parameters["OFFERRANK_TEST_RECENT_DAYS"]

    daily = {"full_refresh": False, "newest_example": dt.date(2026, 6, 22)}  # built as of June 30
    assert tested_days(**daily) == str(DAILY_TESTED_DAYS) == "8"
    assert features_build(dt.date(2026, 7, 1), **daily).args == ["build", "--exclude-resource-type", "unit_test"]
    assert features_build(dt.date(2026, 7, 1), **daily).run_parameters["OFFERRANK_AS_OF_DATE"] == "2026-07-01"
    # as of June 27 last: the examples of June 20 to 23 are added, from 11 days back
    assert tested_days(full_refresh=False, newest_example=dt.date(2026, 6, 19)) == "11"
    # a replay of a date built already rebuilds that date: its 8 days
    assert tested_days(full_refresh=False, newest_example=dt.date(2026, 6, 25)) == "8"
    # the first build and a full refresh test every row: the parameter is set empty, which the
    # macro takes for unset, so that a value in the caller's environment cannot leak into dbt's
    assert tested_days(full_refresh=False, newest_example=None) == ""
    assert tested_days(full_refresh=True, newest_example=dt.date(2026, 6, 22)) == ""
    assert "--full-refresh" in features_build(dt.date(2026, 7, 1), full_refresh=True, newest_example=None).args
