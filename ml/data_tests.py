"""Which dbt data tests of error severity failed in a build, and on which rows: the run's message.

A failed error-severity test stops `dbt build` (dbt skips every model downstream of it), so the
run stops before training. dbt's own output says only that a test failed and how many rows;
this reads the build's run_results.json and manifest.json, and reruns each failed test's
compiled SQL with a limit for a few of the offending rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg

from ml import data

SAMPLE_ROWS = 5


class DataTestsFailed(RuntimeError):
    """dbt build stopped on failed error-severity data tests; the message lists them."""


@dataclass(frozen=True)
class FailedTest:
    """One failed error-severity data test: its rule, where it failed and some offending rows."""

    name: str
    """The test's name, the rule: `unique_impressions_impression_id`, `offers_end_on_or_after_they_start`."""
    test: str
    """The generic test behind it (`unique`, `not_null`, `expression_is_true`...), or `singular`."""
    relation: str
    """What it tests: `source raw.offers`, `model stg_raw__orders`."""
    column: str | None
    failures: int | None
    """Rows the test returned, as dbt counted them."""
    sample: pd.DataFrame
    """Up to SAMPLE_ROWS of those rows (empty if they could not be read: see `sample_error`)."""
    sample_error: str | None = None

    def describe(self) -> str:
        column = f", column {self.column}" if self.column else ""
        rows = "" if self.failures is None else f": {self.failures:,} failing row{'s' * (self.failures != 1)}"
        lines = [f"- {self.name} ({self.test} on {self.relation}{column}){rows}"]
        if self.sample_error:
            lines.append(f"    (sample rows unavailable: {self.sample_error})")
        lines += [f"    {_row_text(row)}" for row in self.sample.to_dict("records")]
        return "\n".join(lines)


def _row_text(row: dict[str, object]) -> str:
    return ", ".join(f"{name}={_value_text(value)}" for name, value in row.items())


def _value_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return str(value)


def failed_error_tests(target_path: Path, conn: psycopg.Connection) -> list[FailedTest]:
    """The data tests that failed at error severity in the dbt invocation that wrote `target_path`.

    `target_path` holds that invocation's run_results.json and manifest.json (warehouse/target,
    or the folder dagster-dbt gives each invocation). Warn-severity failures (status `warn`) are
    left out: they do not stop the build. The sample rows come from `conn`.
    """
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    manifest = json.loads((target_path / "manifest.json").read_text())
    failed = []
    for result in results:
        if not result["unique_id"].startswith("test.") or result["status"] != "fail":
            continue
        node = manifest["nodes"][result["unique_id"]]
        metadata = node.get("test_metadata") or {}
        try:
            sample, error = data.sample_rows(conn, result["compiled_code"], SAMPLE_ROWS), None
        except psycopg.Error as err:
            sample, error = pd.DataFrame(), str(err).strip().splitlines()[0]
        failed.append(
            FailedTest(
                name=node["name"],
                test=metadata.get("name", "singular"),
                relation=_tested_relation(node, manifest),
                column=node.get("column_name"),
                failures=result.get("failures"),
                sample=sample,
                sample_error=error,
            )
        )
    return failed


def _tested_relation(node: dict, manifest: dict) -> str:
    """`source raw.offers` or `model stg_raw__orders`: what the test is attached to."""
    attached = node.get("attached_node") or next(iter(node["depends_on"]["nodes"]), None)
    if attached in manifest["sources"]:
        source = manifest["sources"][attached]
        return f"source {source['source_name']}.{source['name']}"
    if attached in manifest["nodes"]:
        target = manifest["nodes"][attached]
        return f"{target['resource_type']} {target['name']}"
    return "unknown"


def failure_message(failed: list[FailedTest]) -> str:
    """The message of a build stopped by `failed`: each rule, where it failed, and sample rows."""
    count = f"{len(failed)} data test{'s' * (len(failed) != 1)}"
    return "\n".join(
        [f"dbt build stopped before training: {count} of error severity failed (rule, then up to {SAMPLE_ROWS} rows)"]
        + [test.describe() for test in failed]
    )
