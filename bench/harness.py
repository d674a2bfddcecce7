"""The benchmark harness behind `offerrank bench` and `make bench` (issue 9).

It generates a world at a given scale and runs the daily pipeline's stages as the product runs
them, each timed by `bench.measure` (wall seconds, rows, peak memory): generate, load, the dbt
full build of the history as of the day before the run date, training for that day, then the
run date's daily run (the incremental dbt refresh, drift, scoring, explanations, evaluation). The
dbt steps are `dbt build` with the Dagster asset's arguments through its dbt resource; the
Python stages are the `ml.pipeline` functions the assets call. Then, on the same rows, it sets
offerrank's paths beside baselines and limits (`bench.baselines`): reading the day's candidates,
predicting them, and writing the day's scores back.

The scratch tables of the write-back live in schema BENCH_SCHEMA, replaced by the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from bench import baselines
from bench.measure import Figure, measure
from ml import closed_loop, data, pipeline
from ml.config import Settings, code_version, load_model_policy, load_training_config
from ml.features import CANDIDATES_MODEL, RUN_DATE_MODEL, TRAINING_MODEL, DbtManifest
from ml.generate import GeneratorParams

BENCH_SCHEMA = "bench"
# The write-back's scratch tables, one per method, each a fresh copy of ml.offer_scores' shape.
WRITE_BACK_TABLES = {
    "offerrank": "write_back_offerrank",
    "to_sql": "write_back_to_sql",
    "bare_binary_copy": "write_back_binary_copy",
}
# The stages of the run date's daily run (the product's order), and the narrower total.
DAILY_STAGES = ("dbt_incremental", "drift", "score", "explain", "evaluate")
DAILY_TOTAL_STAGES = ("dbt_incremental", "score", "evaluate")
# Each comparison's reference: a stage's rows per second are set against this figure's.
REFERENCES = {
    "read_candidates": ("read_candidates", "bare_copy_out"),
    "write_back": ("write_back", "bare_binary_copy"),
    "predict": ("predict", "bare_predict"),
    "score": ("predict", "bare_predict"),
}


@dataclass
class BenchRun:
    """Everything one run of the harness measured."""

    params: GeneratorParams
    run_date: dt.date | None = None
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)  # counts and checks the targets and JSON need
    pipeline_runs: list[dict[str, object]] = field(default_factory=list)  # ml.pipeline_runs rows of the run

    def figure(self, stage: str, method: str = "offerrank") -> Figure | None:
        return next((f for f in self.figures if f.stage == stage and f.method == method), None)

    def reference(self, figure: Figure) -> Figure | None:
        """The figure `figure`'s rows per second are compared with (None: no baseline)."""
        stage, method = REFERENCES.get(figure.stage, (None, None))
        return self.figure(stage, method) if stage is not None else None


def run_benchmark(
    settings: Settings, params: GeneratorParams, to_sql_rows: int, log: Callable[[str], None]
) -> BenchRun:
    """Generate `params`' world into the warehouse (replacing its data) and measure every stage."""
    run = BenchRun(params)
    run_id = f"bench-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    run.run_date = params.end_date + dt.timedelta(days=1)
    history_date = params.end_date

    log("generate")
    with measure("generate", "offerrank") as m:
        frames, truth = closed_loop.generated_tables(params)
        m.rows = sum(len(frame) for frame in [*frames.values(), *truth.values()])
    run.figures.append(m.figure)
    log("load")
    with measure("load", "offerrank") as m, data.connect(settings) as conn, conn.transaction():
        counts = data.replace_raw_tables(conn, settings.raw_schema, frames)
        counts |= data.replace_truth_tables(conn, settings.truth_schema, truth)
        m.rows = sum(counts.values())
    run.figures.append(m.figure)
    run.facts["raw_rows"] = counts
    del frames, truth
    with data.connect(settings) as conn:
        # no champion, registry or experiment exposures of an earlier world: every run starts alike
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(settings.ml_schema)))

    from orchestration.project import parse_project  # Dagster's modules load only for the dbt steps

    parse_project()
    manifest = DbtManifest.load()
    # the history's build and training, then the run date's daily run: each its own rows of ml.pipeline_runs
    history = pipeline.StageRun(settings=settings, run_id=f"{run_id}-history", manifest=manifest)
    stage = pipeline.StageRun(settings=settings, run_id=run_id, manifest=manifest)
    dbt_log = settings.home / "logs" / f"{run_id}-dbt.log"
    dbt_log.parent.mkdir(parents=True, exist_ok=True)
    log(f"dbt full build as of {history_date} (dbt's output: {dbt_log})")
    run.figures.append(_dbt_build(history, "dbt_full_build", history_date, full_refresh=True, log_path=dbt_log))
    log(f"train for {history_date}")
    examples = _training_examples(settings, manifest)  # counted off the clock
    with measure("train", "offerrank") as m:
        outcome = pipeline.train_models(history, load_training_config(), load_model_policy(), forced=True)
        m.rows = examples
    run.figures.append(m.figure)
    run.facts["training"] = {"status": outcome.status, "reason": outcome.reason, "champion": outcome.champion_id}
    if outcome.champion_id is None:
        raise RuntimeError(f"training left no champion to score with: {outcome.reason}")

    log(f"daily run of {run.run_date}")
    run.figures.append(_dbt_build(stage, "dbt_incremental", run.run_date, full_refresh=False, log_path=dbt_log))
    with measure("drift", "offerrank") as m:
        m.rows = len(pipeline.measure_drift(stage, load_training_config()))
    run.figures.append(m.figure)
    with measure("score", "offerrank") as m:
        scored = pipeline.score_and_recommend(stage)
        m.rows = int(scored["candidate_pairs"])
    run.figures.append(m.figure)
    with measure("explain", "offerrank") as m:
        m.rows = pipeline.explain_recommendations(stage)["rows_written"]
    run.figures.append(m.figure)
    with measure("evaluate", "offerrank") as m:
        metrics = pipeline.evaluate_champion(stage, load_training_config())
        m.rows = int(metrics["n_rows"].max()) if len(metrics) else 0
    run.figures.append(m.figure)
    with data.connect(settings) as conn:
        run.pipeline_runs = [
            row for name in (history.run_id, run_id) for row in data.stage_log(conn, settings.ml_schema, name)
        ]
        run.facts["candidates_per_customer"] = _candidates_per_customer(conn, stage.manifest, run.run_date)
        run.facts["recommendations"] = int(scored["recommendations_written"])

    run_comparisons(run, stage, to_sql_rows, log)
    return run


def run_comparisons(run: BenchRun, stage: pipeline.StageRun, to_sql_rows: int, log: Callable[[str], None]) -> None:
    """Offerrank's paths beside the baselines on the same rows, once the run date is scored:
    reading its candidates, predicting them, and writing its scores back (to_sql: the first
    `to_sql_rows` of them)."""
    log("comparisons: read the candidates")
    candidates = _compare_reads(run, stage, stage.settings)
    log("comparisons: predict")
    _compare_predict(run, stage, stage.settings, candidates)
    del candidates
    log("comparisons: write the scores back")
    _compare_writes(run, stage.settings, to_sql_rows)


def _dbt_build(stage: pipeline.StageRun, name: str, as_of: dt.date, *, full_refresh: bool, log_path: Path) -> Figure:
    """`dbt build` as the warehouse_models asset runs it, through its dbt resource, with dbt's
    output appended to `log_path`; rows: what dbt's models wrote (run_results.json)."""
    from orchestration.dbt_builds import features_build, start_build
    from orchestration.resources import build_resources

    newest_example = pipeline.newest_training_example_date(stage)
    build = features_build(as_of, full_refresh=full_refresh, newest_example=newest_example)
    with (
        measure(name, "offerrank") as m,
        pipeline.recorded_dbt_build(stage) as recorded,
        log_path.open("a") as output,
        contextlib.redirect_stdout(output),
    ):
        invocation = start_build(build_resources()["dbt"], build, raise_on_error=True)
        recorded.target_path = invocation.target_path
        invocation.wait()
        results = json.loads((invocation.target_path / "run_results.json").read_text())["results"]
        m.rows = sum((result.get("adapter_response") or {}).get("rows_affected") or 0 for result in results)
    return m.figure


def _training_examples(settings: Settings, manifest: DbtManifest) -> int:
    """The labelled examples training reads: those known on the run date."""
    with data.connect(settings) as conn:
        (count,) = conn.execute(
            sql.SQL("select count(*) from {} where shown_date <= (select last_labelled_shown_date from {})").format(
                manifest.relation(TRAINING_MODEL), manifest.relation(RUN_DATE_MODEL)
            )
        ).fetchone()
    return int(count)


def _candidates_per_customer(conn: psycopg.Connection, manifest: DbtManifest, as_of: dt.date) -> float:
    (mean,) = conn.execute(
        sql.SQL(
            "select count(*)::float8 / nullif(count(distinct customer_id), 0) from {} where as_of_date = %s"
        ).format(manifest.relation(CANDIDATES_MODEL)),
        (as_of,),
    ).fetchone()
    return float(mean or 0.0)


def _compare_reads(run: BenchRun, stage: pipeline.StageRun, settings: Settings) -> pd.DataFrame:
    """The scoring stage's read of the run date's candidates three ways; returns offerrank's rows."""
    with data.connect(settings) as conn:
        columns = pipeline.scoring_columns(conn, stage, run.run_date)
        query, params = pipeline.candidate_query(stage, columns), (run.run_date,)
        with measure("read_candidates", "offerrank") as m:
            frames = list(pipeline.candidate_frames(conn, stage, run.run_date, columns))
            m.rows = sum(len(frame) for frame in frames)
        run.figures.append(m.figure)
        rendered = psycopg.ClientCursor(conn).mogrify(query, params)
        with measure("read_candidates", "bare_copy_out") as m:
            run.facts["copy_out_bytes"] = baselines.copy_out_bytes(conn, query, params)
            m.rows = run.figure("read_candidates").rows  # the same query: its rows are not counted, only bytes
        run.figures.append(m.figure)
    with baselines.sqlalchemy_engine(settings) as engine, measure("read_candidates", "read_sql") as m:
        m.rows = baselines.read_sql(engine, rendered)
    run.figures.append(m.figure)
    return pd.concat(frames, ignore_index=True)


def _compare_predict(run: BenchRun, stage: pipeline.StageRun, settings: Settings, candidates: pd.DataFrame) -> None:
    """The champion alone on the candidates already in memory, the yardstick of the scoring stage."""
    with data.connect(settings) as conn:
        champion = pipeline.load_champion(conn, stage)
    model = champion.scorer.model
    inputs, method = baselines.model_inputs(model, candidates)
    with measure("predict", "bare_predict") as m:
        raw = baselines.predict(model, inputs)
        m.rows = len(raw)
    run.figures.append(m.figure)
    run.facts["predict"] = {
        "model_id": champion.model_id,
        "algorithm": model.algorithm,
        "method": method,
        "threads": baselines.PREDICT_THREADS,
        # the bare path must score exactly as the product does, or its speed says nothing
        "max_abs_difference_to_offerrank": float(np.max(np.abs(raw - model.raw_scores(candidates)), initial=0.0)),
    }


def _compare_writes(run: BenchRun, settings: Settings, to_sql_rows: int) -> None:
    """The run date's score rows written into fresh copies of ml.offer_scores three ways."""
    source = sql.Identifier(settings.ml_schema, "offer_scores")
    with data.connect(settings) as conn:
        scores = data.copy_out(conn, sql.SQL("select * from {} where score_date = %s").format(source), (run.run_date,))
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(BENCH_SCHEMA)))
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(BENCH_SCHEMA)))
        tables = {method: sql.Identifier(BENCH_SCHEMA, name) for method, name in WRITE_BACK_TABLES.items()}
        for method, table in tables.items():
            # offerrank's as ml.offer_scores, by day; the others one table with the same primary key
            partitioned = sql.SQL(" partition by range (score_date)" if method == "offerrank" else "")
            conn.execute(sql.SQL("create table {} (like {} including all){}").format(table, source, partitioned))

        with measure("write_back", "offerrank") as m, conn.transaction():
            load = data.new_day_partition(conn, BENCH_SCHEMA, WRITE_BACK_TABLES["offerrank"], run.run_date)
            m.rows = data.copy_in(conn, load, scores)
            data.swap_in_day_partition(conn, BENCH_SCHEMA, WRITE_BACK_TABLES["offerrank"], run.run_date, load)
        run.figures.append(m.figure)

        payload = baselines.binary_copy_payload(conn, tables["bare_binary_copy"], scores)
        with measure("write_back", "bare_binary_copy") as m, conn.transaction():
            baselines.send_binary_copy(conn, tables["bare_binary_copy"], list(scores.columns), payload)
            m.rows = len(scores)
        run.figures.append(m.figure)
        run.facts["binary_copy_bytes"] = len(payload)
        del payload

        sample = scores.iloc[:to_sql_rows]
        with baselines.sqlalchemy_engine(settings) as engine, measure("write_back", "to_sql") as m:
            m.rows = baselines.to_sql(engine, BENCH_SCHEMA, WRITE_BACK_TABLES["to_sql"], sample)
        run.figures.append(m.figure)
        run.facts["write_back_rows"] = {method: _count(conn, table) for method, table in tables.items()}
        run.facts["to_sql_sample"] = len(sample) < len(scores)
        # the limit must have written what offerrank wrote, or its speed says nothing
        run.facts["binary_copy_equals_offerrank"] = _same_rows(conn, tables["offerrank"], tables["bare_binary_copy"])


def _count(conn: psycopg.Connection, table: sql.Identifier) -> int:
    return int(conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()[0])


def _same_rows(conn: psycopg.Connection, left: sql.Identifier, right: sql.Identifier) -> bool:
    differ = sql.SQL(
        "select count(*) from ((table {0} except all table {1}) union all (table {1} except all table {0})) as d"
    )
    return int(conn.execute(differ.format(left, right)).fetchone()[0]) == 0


def machine() -> dict[str, object]:
    """Where the figures were taken: the cores and the load average (1, 5, 15 minutes)."""
    return {"cores": os.cpu_count(), "platform": platform.platform(), "load_average": list(os.getloadavg())}


def commit() -> str:
    return code_version()
