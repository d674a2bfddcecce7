"""`dagster dev` (through `offerrank dev`) shows the whole graph and backfills it over two dates."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from ml import data
from ml.config import load_settings
from tests.conftest import free_port, load_generated, use_database


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


@pytest.fixture(scope="module")
def dagster_dev(server, generated_data, dbt_manifest, tmp_path_factory) -> Iterator[int]:
    settings = use_database(server, "dagster_dev")
    load_generated(settings, generated_data)
    port = free_port()
    log = (tmp_path_factory.mktemp("dagster-dev") / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "offerrank"), "dev", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # no drift retraining run launched by the sensor after the backfill: this test waits for none
        # one candidate model is enough to show the backfill works
        env={**os.environ, "OFFERRANK_DRIFT_THRESHOLD": "1000", "OFFERRANK_ALGORITHMS": "logreg"},
        # its own process group: Ctrl-C in a terminal reaches the webserver, the daemon and the
        # code server together, and so does the signal below
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"dagster dev did not come up; see {log.name}") from None
                time.sleep(1)
        yield port
    finally:
        # Sent to the dagster dev process alone, SIGINT left it waiting a minute for its children.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_the_ui_shows_dbt_models_and_ml_assets(dagster_dev):
    nodes = _graphql(dagster_dev, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    names = {node["assetKey"]["path"][-1] for node in nodes}
    assert {"fct_training_examples", "fct_scoring_candidates", "model_registry", "offer_scores"} <= names


def _backfill_status(port: int, backfill_id: str) -> dict:
    return _graphql(
        port,
        f'{{ partitionBackfillOrError(backfillId: "{backfill_id}") {{ ... on PartitionBackfill'
        " { status runs(limit: 10) { runId status tags { key value } } } } }",
    )["partitionBackfillOrError"]


def test_a_backfill_of_two_dates_from_the_ui_runs_each_date(dagster_dev):
    """A backfill launched as the UI does, run by `dagster dev`'s daemon: one run per date (they may
    start together and take turns at the run lock), each running every stage for its own date. The
    job without reporting: the reporting marts' build is the end-to-end test's."""
    settings = load_settings()
    with data.connect(settings) as conn:
        last = data.next_run_date(conn, settings.raw_schema)
    dates = [(last - dt.timedelta(days=1)).isoformat(), last.isoformat()]
    launched = _graphql(
        dagster_dev,
        "mutation { launchPartitionBackfill(backfillParams: { selector: { partitionSetName:"
        ' "daily_run_without_reporting_partition_set", repositorySelector: { repositoryLocationName: "offerrank",'
        f' repositoryName: "__repository__" }} }}, partitionNames: {json.dumps(dates)} }})'
        " { __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 600
    backfill = _backfill_status(dagster_dev, launched["backfillId"])
    # done when both runs are: the daemon marks the backfill complete at its next pass only
    while (
        len(backfill["runs"]) < len(dates)
        or any(run["status"] not in ("SUCCESS", "FAILURE", "CANCELED") for run in backfill["runs"])
    ) and time.monotonic() < deadline:
        time.sleep(2)
        backfill = _backfill_status(dagster_dev, launched["backfillId"])
    assert backfill["status"] not in ("FAILED", "COMPLETED_FAILED", "CANCELED"), backfill
    runs = {
        next(tag["value"] for tag in run["tags"] if tag["key"] == "dagster/partition"): run["runId"]
        for run in backfill["runs"]
    }
    assert sorted(runs) == dates and {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
    with data.connect(settings) as conn:
        for date, run_id in runs.items():
            steps = conn.execute(
                sql.SQL("select step, run_date from {} where run_id = %s and status = 'success'").format(
                    sql.Identifier(settings.ml_schema, "pipeline_runs")
                ),
                (run_id,),
            ).fetchall()
            assert sorted(step for step, _ in steps) == [
                "dbt_build",
                "drift",
                "evaluate",
                "explain",
                "score",
                "train",
            ]
            assert {run_date.isoformat() for _, run_date in steps} == {date}
            scores = sql.Identifier(settings.ml_schema, "offer_scores")
            assert data.date_row_count(conn, scores, "score_date", dt.date.fromisoformat(date)) > 0
