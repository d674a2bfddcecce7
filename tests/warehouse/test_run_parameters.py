"""The run parameters (warehouse/macros/run_parameter.sql) in the environment, as the Dagster asset
passes them (orchestration/dbt_builds.py): dbt builds as of the run date they give, and keeps its
parse of the project from one run date to the next, where a run date passed in `--vars` makes it
parse the whole project again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ml.config import PROFILES_DIR, WAREHOUSE_DIR
from orchestration.dbt_builds import features_build

if TYPE_CHECKING:  # dbt loads only in the workers whose tests run it
    from dbt.cli.main import dbtRunnerResult
    from dbt_common.events.base_types import EventMsg

# dbt's events: it reused its parse, changed nothing in it; parsed again the files that changed
# (those that read a changed environment variable while parsing among them); parsed everything again
PARSE_EVENTS = ("PartialParsingSkipParsing", "PartialParsingEnabled", "UnableToPartialParse")
COMPILED_RUN_DATE = Path("compiled", "offerrank", "models", "intermediate", "features", "int_as_of_dates.sql")


def _compile_run_dates(target: Path, *args: str) -> tuple[dbtRunnerResult, dict[str, str]]:
    """int_as_of_dates compiled into `target`: dbt's result, and what it said about parsing (the
    parse events, by name)."""
    from dbt.cli.main import dbtRunner

    parsing: dict[str, str] = {}

    def listen(event: EventMsg) -> None:
        if event.info.name in PARSE_EVENTS:
            parsing[event.info.name] = event.info.msg

    result = dbtRunner(callbacks=[listen]).invoke(
        [
            *("compile", "--select", "int_as_of_dates", "--target-path", str(target), "--quiet"),
            *("--project-dir", str(WAREHOUSE_DIR), "--profiles-dir", str(PROFILES_DIR), *args),
        ]
    )
    return result, parsing


def _compiled_run_date(target: Path, *args: str) -> tuple[str, dict[str, str]]:
    result, parsing = _compile_run_dates(target, *args)
    assert result.success, result.exception
    return (target / COMPILED_RUN_DATE).read_text(), parsing


def _daily(monkeypatch: pytest.MonkeyPatch, as_of: dt.date) -> None:
    parameters = features_build(as_of, full_refresh=False, newest_example=as_of - dt.timedelta(days=9))
    for name, value in parameters.run_parameters.items():
        monkeypatch.setenv(name, value)


def test_a_daily_build_reuses_the_day_before_s_parse(server, tmp_path, monkeypatch):
    _daily(monkeypatch, dt.date(2026, 3, 1))
    compiled, _ = _compiled_run_date(tmp_path)  # the first parse: nothing saved yet
    assert "'2026-03-01'::date" in compiled

    _daily(monkeypatch, dt.date(2026, 3, 2))
    compiled, parsing = _compiled_run_date(tmp_path)
    assert "'2026-03-02'::date" in compiled
    assert "PartialParsingSkipParsing" in parsing and "UnableToPartialParse" not in parsing, parsing

    # the run date as a var: the vars changed, so dbt parses everything again; a var wins
    compiled, parsing = _compiled_run_date(tmp_path, "--vars", '{"as_of_date": "2026-03-03"}')
    assert "'2026-03-03'::date" in compiled
    assert "vars" in parsing.get("UnableToPartialParse", ""), parsing


def test_a_run_date_in_the_environment_is_checked(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OFFERRANK_AS_OF_DATE", "March 1st")
    result, _ = _compile_run_dates(tmp_path)
    assert not result.success
    assert "OFFERRANK_AS_OF_DATE" in str(result.exception) and "March 1st" in str(result.exception)
