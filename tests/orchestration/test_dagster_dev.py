"""`dagster dev` (through `offerrank dev`) shows the whole graph and materializes all of it."""

from __future__ import annotations

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
        env=dict(os.environ),
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
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_the_ui_shows_dbt_models_and_ml_assets(dagster_dev):
    nodes = _graphql(dagster_dev, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    names = {node["assetKey"]["path"][-1] for node in nodes}
    assert {"fct_training_examples", "fct_scoring_candidates", "model_registry", "offer_scores"} <= names


def test_materializing_the_daily_job_from_the_ui_succeeds(dagster_dev):
    launched = _graphql(
        dagster_dev,
        'mutation { launchRun(executionParams: { selector: { repositoryLocationName: "offerrank",'
        ' repositoryName: "__repository__", jobName: "daily_run" }, runConfigData: "{}" })'
        " { __typename ... on LaunchRunSuccess { run { runId } } } }",
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 400
    status = "QUEUED"
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(3)
        status = _graphql(dagster_dev, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')[
            "runOrError"
        ]["status"]
    assert status == "SUCCESS"
    settings = load_settings()
    with data.connect(settings) as conn:
        steps = conn.execute(
            sql.SQL("select step from {} where run_id = %s and status = 'success'").format(
                sql.Identifier(settings.ml_schema, "pipeline_runs")
            ),
            (run_id,),
        ).fetchall()
    assert sorted(step for (step,) in steps) == [
        "dbt_build",
        "drift",
        "evaluate",
        "explain",
        "reporting",
        "score",
        "train",
    ]
