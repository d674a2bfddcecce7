"""The benchmark harness's comparisons (bench/harness.py) on the test world: every stage and
method is measured, the baselines move the same rows as offerrank, and the bare binary COPY
writes exactly the rows offerrank writes.

They run on the session's built warehouse (`built_warehouse`), with a quick champion and the
day's scores in an ml schema of their own, so that no other test sees them. Speed is the
harness's business, not the tests'.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pytest
from psycopg import sql

from bench.harness import BENCH_SCHEMA, WRITE_BACK_TABLES, BenchRun, machine, run_comparisons
from bench.report import as_json, targets
from ml import data, pipeline
from ml.config import load_model_policy, load_settings, load_training_config
from ml.features import DbtManifest
from tests.conftest import TEST_DATA

ML_SCHEMA = "bench_harness_ml"
COMPARED = {
    ("read_candidates", "offerrank"),
    ("read_candidates", "bare_copy_out"),
    ("read_candidates", "read_sql"),
    ("predict", "bare_predict"),
    ("write_back", "offerrank"),
    ("write_back", "bare_binary_copy"),
    ("write_back", "to_sql"),
}
SCORE_KEY = ["score_date", "customer_id", "offer_id"]


@pytest.fixture(scope="module")
def compared(built_warehouse):
    """The harness's comparisons on the test world's run date, once it is scored by a quick champion;
    with the run date's scores as ml.offer_scores holds them and each write-back table read back."""
    settings, build = built_warehouse
    assert build.returncode == 0, build.stdout[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGDATABASE", settings.database.dbname)
        patch.setenv("OFFERRANK_ML_SCHEMA", ML_SCHEMA)
        settings = load_settings()
        stage = pipeline.StageRun(settings, "bench-harness-test", DbtManifest.load())
        with data.connect(settings) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(ML_SCHEMA)))
        # one quick LightGBM model is enough to score the day: the comparisons are the subject
        quick = dataclasses.replace(
            load_training_config(), algorithms=("lgbm_binary",), num_boost_round=20, eval_k=(5,), segment_columns=()
        )
        outcome = pipeline.train_models(stage, quick, load_model_policy(), forced=True)
        assert outcome.champion_id is not None, outcome.reason
        pipeline.score_and_recommend(stage)
        with data.connect(settings) as conn:
            run = BenchRun(TEST_DATA, run_date=pipeline.run_date(conn, stage.manifest))
            run_comparisons(run, stage, to_sql_rows=1_000_000, log=lambda _: None)
            scores = _ordered(conn, sql.Identifier(ML_SCHEMA, "offer_scores"), run.run_date)
            written = {
                method: _ordered(conn, sql.Identifier(BENCH_SCHEMA, table), None)
                for method, table in WRITE_BACK_TABLES.items()
            }
    return run, scores, written


def _ordered(conn, table: sql.Identifier, score_date: dt.date | None) -> pd.DataFrame:
    where = sql.SQL("") if score_date is None else sql.SQL(" where score_date = %s")
    query = sql.SQL("select * from {}{} order by score_date, customer_id, offer_id").format(table, where)
    return data.copy_out(conn, query, None if score_date is None else (score_date,))


def test_every_comparison_is_measured_and_the_json_keeps_its_keys(compared):
    run, _, _ = compared
    assert {(figure.stage, figure.method) for figure in run.figures} == COMPARED
    document = json.loads(json.dumps(as_json(run, machine(), "commit", dt.datetime.now(dt.UTC)), default=str))
    assert set(document) == {
        "version", "date", "git_commit", "machine", "scale", "run_date", "figures", "daily_run", "targets", "facts",
        "pipeline_runs",
    }  # fmt: skip
    assert document["scale"]["customers"] == TEST_DATA.customers
    assert {"cores", "load_average"} <= set(document["machine"])
    for figure in document["figures"]:
        assert set(figure) == {
            "stage", "method", "rows", "seconds", "rows_per_second", "peak_rss_mb", "ratio_to_reference", "reference",
        }  # fmt: skip
        assert figure["seconds"] > 0
    # each comparison is set against its limit, which is 1 against itself
    ratios = {(f["stage"], f["method"]): f["ratio_to_reference"] for f in document["figures"]}
    assert ratios[("write_back", "bare_binary_copy")] == ratios[("read_candidates", "bare_copy_out")] == 1
    assert ratios[("write_back", "offerrank")] > 0


def test_the_baselines_move_the_same_rows_as_offerrank(compared):
    run, scores, written = compared
    candidates = run.figure("read_candidates").rows
    assert candidates == len(scores) > 1000  # one score per candidate pair
    for method in ("bare_copy_out", "read_sql"):
        assert run.figure("read_candidates", method).rows == candidates
    assert run.figure("predict", "bare_predict").rows == candidates
    for method in WRITE_BACK_TABLES:
        assert run.figure("write_back", method).rows == len(written[method]) == len(scores), method
    assert run.facts["write_back_rows"] == dict.fromkeys(WRITE_BACK_TABLES, len(scores))
    assert run.facts["to_sql_sample"] is False
    # the bare prediction is the champion's own scores, computed without offerrank around it
    assert run.facts["predict"]["max_abs_difference_to_offerrank"] == 0


def test_the_bare_binary_copy_writes_exactly_offerrank_rows(compared):
    run, scores, written = compared
    pd.testing.assert_frame_equal(written["bare_binary_copy"], written["offerrank"])
    pd.testing.assert_frame_equal(written["offerrank"], scores)
    pd.testing.assert_frame_equal(written["to_sql"], scores)
    assert run.facts["binary_copy_equals_offerrank"] is True


def test_the_targets_are_judged_from_the_figures_or_said_unjudged(compared):
    run, _, _ = compared
    judged = {target.name: target for target in targets(run)}
    write_back = judged["write-back / bare binary COPY (rows/s)"]
    offerrank, limit = run.figure("write_back"), run.figure("write_back", "bare_binary_copy")
    assert write_back.value == pytest.approx(offerrank.rows_per_second / limit.rows_per_second)
    assert write_back.met == (write_back.value >= 0.7)
    # the test world is far from 100k customers and 1M examples: no verdict, and a reason
    daily = next(target for name, target in judged.items() if name.startswith("daily run ("))
    assert daily.met is None and "100,000" in daily.note
