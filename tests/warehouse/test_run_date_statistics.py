"""The run date's small tables are analysed as they are built (warehouse/models/marts/dim_run_date.sql):
the models and tests built after them join them before autovacuum looks at them, and autovacuum
never analyses a table of one row. Without statistics the planner takes a one-page table for about
2,000 rows, and every join to the run date for 2,000 times larger than it is.
"""

from __future__ import annotations

import pytest
from psycopg import sql

from ml import data
from ml.features import DbtManifest
from tests.conftest import in_use


@pytest.mark.parametrize("model", ["dim_run_date", "int_as_of_dates"])
def test_the_run_dates_tables_are_analysed_when_built(built_warehouse, dbt_manifest, model):
    relation = DbtManifest.load().relation(model)
    with data.connect(in_use(built_warehouse)) as conn:
        (rows,) = conn.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()
        (explained,) = conn.execute(sql.SQL("explain (format json) select * from {}").format(relation)).fetchone()
        (analysed,) = conn.execute(
            # last_analyze: by ANALYZE, not by autovacuum (last_autoanalyze)
            "select last_analyze is not null from pg_stat_user_tables where relid = %s::regclass",
            (relation.as_string(conn),),
        ).fetchone()
    estimated = explained[0]["Plan"]["Plan Rows"]
    assert analysed, f"{model} was not analysed by its build"
    assert estimated == rows, f"{model}: {estimated} rows estimated, {rows} in the table"
