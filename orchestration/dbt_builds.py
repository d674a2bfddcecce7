"""The `dbt build` commands the assets run, and how a run's parameters reach dbt.

The run date and the days a daily build tests are run parameters
(warehouse/macros/run_parameter.sql). They go to dbt in the environment, not as `--vars`: dbt
parses the whole project again whenever its vars change (4 s here, a fixed cost of every daily
build), while a changed environment variable that no file reads while parsing leaves the parse
cached in target/partial_parse.msgpack, which dagster-dbt copies into each run's target path.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

# dbt's unit tests check the SQL's logic on fixed rows, not the day's data: they run in the test
# suite and CI (`dbt build`), not in every daily run (dbt's advice for production).
PRODUCTION_BUILD = ["build", "--exclude-resource-type", "unit_test"]
# A daily build's data tests read only the rows it wrote (warehouse/macros/recent_rows.sql): the
# run date's features and candidates back to the training examples whose 7-day label window
# closed that day, shown 8 days before it. The quarantine checks again the raw rows of the same
# days (warehouse/models/staging/raw/stg_raw__quarantined_rows.sql).
DAILY_TESTED_DAYS = 8
# The run parameters' environment variables, as warehouse/macros/run_parameter.sql names them.
AS_OF_DATE_VARIABLE = "OFFERRANK_AS_OF_DATE"
TEST_RECENT_DAYS_VARIABLE = "OFFERRANK_TEST_RECENT_DAYS"
RUN_PARAMETERS = (AS_OF_DATE_VARIABLE, TEST_RECENT_DAYS_VARIABLE)


class DbtBuild(NamedTuple):
    """dbt's arguments, and the run parameters as the environment variables
    warehouse/macros/run_parameter.sql reads (an empty value: unset)."""

    args: list[str]
    run_parameters: dict[str, str]


def features_build(as_of: dt.date, *, full_refresh: bool, newest_example: dt.date | None) -> DbtBuild:
    """The `dbt build` of the features as of `as_of`, where the built training examples go up to
    shown date `newest_example` (None: never built). A build that adds dates tests the rows it
    writes, from the first example date it adds on (8 days back on a daily run, more after missed
    days); a full refresh or a first build tests every row."""
    tested_days = None
    if newest_example is not None and not full_refresh:
        tested_days = max(DAILY_TESTED_DAYS, (as_of - newest_example).days - 1)
    return DbtBuild(
        args=[*PRODUCTION_BUILD, *(["--full-refresh"] if full_refresh else [])],
        run_parameters=run_parameters(as_of, tested_days),
    )


def run_parameters(as_of: dt.date, tested_days: int | None = None) -> dict[str, str]:
    """The environment of a dbt command as of `as_of` whose tests read the last `tested_days` days
    (None: every row). Both variables are always set, the unset one empty, so that a value in the
    caller's environment cannot reach dbt."""
    return {
        AS_OF_DATE_VARIABLE: as_of.isoformat(),
        TEST_RECENT_DAYS_VARIABLE: "" if tested_days is None else str(tested_days),
    }


def start_build(dbt: DbtCliResource, build: DbtBuild, **cli_options: Any) -> DbtCliInvocation:
    """Start `build` through dagster-dbt. `DbtCliResource.cli` gives the dbt process this process's
    environment and takes no other, and starts it before returning: the run parameters are set
    here for that call alone, then restored."""
    with _environment(build.run_parameters):
        return dbt.cli(build.args, **cli_options)


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` set in os.environ inside the block, the previous values restored after it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
