"""The incremental feature marts: daily runs, a gap and a replay give the rows of a full rebuild."""

from __future__ import annotations

import json
import re

import pandas as pd
from psycopg import sql

from ml import data
from tests.conftest import dbt, load_generated, model_sql, use_database

# The daily order totals: incremental over the days loaded, whatever the run date.
DAILY_TOTALS = [
    "intermediate.int_order_items_summed_to_customer_days",
    "intermediate.int_order_items_summed_to_customer_category_days",
    "intermediate.int_order_items_summed_to_customer_product_days",
]
# The incremental models built up to the run date, with their date keys.
INCREMENTAL_TABLES = {
    "intermediate.int_impressions_labelled": "shown_date",
    "marts.feat_customer_daily": "as_of_date",
    "marts.feat_offer_daily": "as_of_date",
    "marts.feat_customer_offer_daily": "as_of_date",
    "marts.fct_training_examples": "shown_date",
}
# And the run date's tables, rebuilt on every run.
BUILT_TABLES = [*DAILY_TOTALS, *INCREMENTAL_TABLES, "marts.fct_scoring_candidates", "marts.dim_run_date"]


def _checksums(settings) -> dict[str, tuple[int, str]]:
    with data.connect(settings) as conn:
        return {
            table: conn.execute(
                "select count(*), md5(coalesce(string_agg(md5(t::text), '' order by md5(t::text)), ''))"
                f" from {table} as t"
            ).fetchone()
            for table in BUILT_TABLES
        }


def _row_versions(settings) -> dict[str, dict]:
    """Per table and date, the transaction ids that wrote its rows: they change only if rows are rewritten."""
    with data.connect(settings) as conn:
        return {
            table: dict(
                conn.execute(
                    f"select {date_column}, array_agg(distinct xmin::text order by xmin::text)"
                    f" from {table} group by {date_column}"
                ).fetchall()
            )
            for table, date_column in INCREMENTAL_TABLES.items()
        }


def _manual_analyze_counts(settings) -> dict[str, int]:
    """How many times each incremental table has been analysed by ANALYZE (autovacuum counts apart)."""
    with data.connect(settings) as conn:
        return dict(
            conn.execute(
                "select schemaname || '.' || relname, analyze_count from pg_stat_user_tables"
                " where schemaname || '.' || relname = any(%s)",
                ([*DAILY_TOTALS, *INCREMENTAL_TABLES],),
            ).fetchall()
        )


def _run(as_of: pd.Timestamp, *flags: str) -> None:
    dbt("run", *flags, "--vars", json.dumps({"as_of_date": as_of.date().isoformat()}))


def _customer_features_sql(kind: str) -> str:
    """feat_customer_daily's SQL of the last run: as compiled (`kind` "compiled") or as run ("run")."""
    return model_sql("marts", "feat_customer_daily", kind)


def _plan_of_last_delete(settings, as_of: pd.Timestamp) -> str:
    """The plan of the delete feat_customer_daily's last incremental run ran, against new rows of
    `as_of` in a temporary table made as dbt makes it (`create table as`, never analysed)."""
    delete = _customer_features_sql("run").split(";")[0]
    new_rows = re.search(r'from "(feat_customer_daily__dbt_tmp\w*)"', delete).group(1)
    with data.connect(settings) as conn:
        new_rows_of_date = sql.SQL("create temporary table {} as select * from {} where as_of_date = {}")
        conn.execute(
            new_rows_of_date.format(
                sql.Identifier(new_rows), sql.Identifier("marts", "feat_customer_daily"), sql.Literal(as_of.date())
            )
        )
        return "\n".join(line for (line,) in conn.execute(sql.SQL("explain {}").format(sql.SQL(delete))))


def test_daily_runs_a_gap_and_a_replay_write_only_their_dates_and_equal_a_full_rebuild(server, generated_data):
    settings = use_database(server, "incremental")
    load_generated(settings, generated_data)
    end = generated_data["impressions"]["shown_at"].max().normalize() + pd.Timedelta(days=1)

    _run(end - pd.Timedelta(days=6))  # the first run is a full build
    # which analyses every incremental table it created (warehouse/macros/analyze_new_incremental_table.sql)
    first_analyzed = _manual_analyze_counts(settings)
    assert first_analyzed == dict.fromkeys(first_analyzed, 1) and len(first_analyzed) == 8, first_analyzed
    for days_back in (5, 4):  # two daily runs
        _run(end - pd.Timedelta(days=days_back))
    before = _row_versions(settings)
    _run(end - pd.Timedelta(days=1))  # a run after a two-day gap: three dates later
    after = _row_versions(settings)
    for table, versions in before.items():
        new_dates = sorted(set(after[table]) - set(versions))
        assert len(new_dates) == 3, (table, new_dates)
        assert {date: after[table][date] for date in versions} == versions, f"{table}: earlier dates were rewritten"
    # the run wrote the dates it built into the SQL as literals, which the planner estimates
    # (warehouse/macros/incremental_build_date_bounds.sql)
    compiled = _customer_features_sql("compiled")
    first, last = ((end - pd.Timedelta(days=days)).date().isoformat() for days in (3, 1))
    assert f"ordered_date >= '{first}'::date - 90" in compiled, compiled
    assert f"ordered_date < '{last}'::date" in compiled, compiled
    # three dates: their category totals summed from the category days, not the run date's windows
    assert "from run_date_category_windows" not in compiled, compiled

    _run(end - pd.Timedelta(days=3))  # a replay of a date already built
    analyzed = _manual_analyze_counts(settings)
    _run(end)
    # the run date alone: its category totals are int_customer_category_windows_of_run_date's
    assert "from run_date_category_windows" in _customer_features_sql("compiled")
    # the dates it replaces are found through the table's date index, not by reading every row
    # (warehouse/macros/incremental_delete_insert.sql)
    plan = _plan_of_last_delete(settings, end)
    assert "Seq Scan on feat_customer_daily dbt_internal_dest" not in plan, plan
    assert "Index Cond: (as_of_date = ANY" in plan, plan
    incremental = _checksums(settings)
    # a daily run leaves the statistics to autovacuum
    assert _manual_analyze_counts(settings) == analyzed and len(analyzed) == 8

    _run(end, "--full-refresh")
    assert _checksums(settings) == incremental
    # a full refresh analyses every incremental table it rewrote, each now a new table
    assert _manual_analyze_counts(settings) == dict.fromkeys(analyzed, 1)
