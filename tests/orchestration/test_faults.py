"""Faults during the daily stages: a process killed while it writes the day, and a database that
goes away between stages and during one.

Both run on a second embedded server of their own with the test world built on it (the heuristic
ranks: no model is needed to write a day), so stopping it leaves the session's server alone.
Tests in this file run in order on that server.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from ml import data, embedded_db, pipeline
from ml.config import PROJECT_ROOT, Settings, load_settings
from ml.features import CANDIDATES_MODEL, RUN_DATE_MODEL, DbtManifest
from tests.conftest import dbt, free_port, load_generated
from tests.orchestration.test_end_to_end import _checksums

# The scoring stage in a process of its own, for the test to kill.
SCORING_PROCESS = """
import sys
from ml import pipeline
from ml.config import load_settings
from ml.features import DbtManifest
pipeline.score_and_recommend(pipeline.StageRun(load_settings(), sys.argv[1], DbtManifest.load()))
"""


@pytest.fixture(scope="module")
def world(server: Settings, generated_data, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second embedded server (its own home and port) with the test world loaded and the dbt
    models built; the environment points at it while this module runs, so dbt and child processes
    use it too."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OFFERRANK_HOME", str(tmp_path_factory.mktemp("faults-home")))
        env.setenv("PGPORT", str(free_port()))
        env.setenv("PGDATABASE", "faults")
        settings = load_settings()
        embedded_db.start(settings)
        try:
            load_generated(settings, generated_data)
            # only what scoring reads: the training marts would double the build
            dbt("run", "--quiet", "--select", f"+{CANDIDATES_MODEL}", f"+{RUN_DATE_MODEL}")
            yield settings
        finally:
            embedded_db.stop(settings)


def _stage(settings: Settings, **changes: object) -> pipeline.StageRun:
    return pipeline.StageRun(dataclasses.replace(settings, **changes), f"faults-{uuid.uuid4()}", DbtManifest.load())


def _wait_for(condition: Callable[[], object], what: str, seconds: float = 60) -> object:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def _blocked_by(observer: psycopg.Connection, blocker: psycopg.Connection) -> tuple[int, str] | None:
    """(pid, query) of the backend waiting for a lock `blocker` holds, if there is one."""
    return observer.execute(
        "select pid, query from pg_stat_activity where wait_event_type = 'Lock' and %s = any(pg_blocking_pids(pid))",
        (blocker.info.backend_pid,),
    ).fetchone()


def _stage_status(settings: Settings, run_id: str) -> list[tuple[str, str]]:
    with data.connect(settings) as conn:
        return conn.execute(
            sql.SQL("select step, status from {} where run_id = %s order by step").format(
                sql.Identifier(settings.ml_schema, "pipeline_runs")
            ),
            (run_id,),
        ).fetchall()


def test_a_stage_killed_while_it_writes_the_day_leaves_the_previous_day_and_the_next_run_completes(world):
    """SIGKILL of the scoring process in the middle of its transaction, at a point chosen by locks,
    not by timing:

    1. the test holds an ACCESS EXCLUSIVE lock on fct_scoring_candidates; the child starts, creates
       the ml tables where missing, logs its stage and waits on that lock at its first read of the
       candidates. Its table creation (ALTER TABLE: ACCESS EXCLUSIVE on the ml tables) has
       committed by then, so step 2 cannot make it wait there instead;
    2. in a second open transaction, the test inserts the recommendation (date, customer, rank 4)
       that the previous day (written with top_k 3) lacks and the new day (top_k 5) has, for the
       last customer in the order the stage writes, then releases the first lock;
    3. the child deletes the day of both tables and writes it chunk by chunk (scores, then
       recommendations) until its COPY reaches that key, where the unique index makes it wait for
       the test's transaction: every score and every other customer's recommendations of the new
       day are written by then, uncommitted (the last customer comes as a chunk of its own);
    4. the test SIGKILLs the child there and rolls back; the orphaned backend goes on, finds its
       client gone and rolls back its transaction.

    A lock on an ml table alone would stop the child before it writes anything, and polling
    pg_stat_progress_copy would race the commit.
    """
    settings = world
    full_run = _stage(settings)
    pipeline.score_and_recommend(full_run)
    full_day = _checksums(settings)
    recommendations = sql.Identifier(settings.ml_schema, "recommendations")
    with data.connect(settings) as conn:
        score_date, customer = conn.execute(
            sql.SQL("select score_date, max(customer_id) from {} where rank = 4 group by score_date").format(
                recommendations
            )
        ).fetchone()
    pipeline.score_and_recommend(_stage(settings, top_k=3))
    previous_day = _checksums(settings)
    assert previous_day != full_day

    candidates = DbtManifest.load().relation(CANDIDATES_MODEL)
    killed_run = f"faults-killed-{uuid.uuid4()}"
    with (
        data.connect(settings) as observer,
        psycopg.connect(settings.database.conninfo()) as gate,
        psycopg.connect(settings.database.conninfo()) as conflict,
    ):
        gate.execute(sql.SQL("lock table {} in access exclusive mode").format(candidates))
        child = subprocess.Popen(
            [sys.executable, "-c", SCORING_PROCESS, killed_run],
            cwd=PROJECT_ROOT,
            env=os.environ,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: child.poll() is None and _blocked_by(observer, gate), "the child at the gate")
            conflict.execute(
                sql.SQL(
                    "insert into {table} (score_date, customer_id, rank, offer_id, score, model_id, ranked_by)"
                    " select score_date, customer_id, 4, offer_id, score, model_id, ranked_by from {table}"
                    " where score_date = %s and customer_id = %s and rank = 1"
                ).format(table=recommendations),
                (score_date, customer),
            )
            gate.rollback()
            # the child's writer connection (the gate held its reader)
            pid, query = _wait_for(
                lambda: child.poll() is None and _blocked_by(observer, conflict), "the child's COPY at the key"
            )
            assert query.lower().startswith("copy") and "recommendations" in query
            received = observer.execute(
                "select bytes_processed from pg_stat_progress_copy where pid = %s", (pid,)
            ).fetchone()[0]
            assert received > 0  # the COPY is under way: this is the middle of the transaction
            # Readers see the previous day while the child's transaction is open.
            assert _checksums(settings) == previous_day
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
            child.communicate()
        conflict.rollback()
        _wait_for(
            lambda: not observer.execute("select 1 from pg_stat_activity where pid = %s", (pid,)).fetchone(),
            "the killed client's backend to end",
        )
        assert observer.execute("select count(*) from pg_locks where pid = %s", (pid,)).fetchone()[0] == 0
        held = observer.execute(
            "select count(*) from pg_locks where pid <> pg_backend_pid() and relation = any(%s::regclass[])",
            ([f"{settings.ml_schema}.offer_scores", f"{settings.ml_schema}.recommendations"],),
        ).fetchone()[0]
        assert held == 0

    assert _checksums(settings) == previous_day
    assert _stage_status(settings, killed_run) == [("score", "running")]  # it could never log its end
    next_run = _stage(settings)
    counts = pipeline.score_and_recommend(next_run)
    assert _stage_status(settings, next_run.run_id) == [("score", "success")]
    assert _checksums(settings) == full_day
    assert counts["candidate_pairs"] > 0 and counts["recommendations_written"] > 0


SECRET = "not-to-be-printed"


def test_a_database_gone_between_or_during_stages_says_so_and_a_rerun_completes(world):
    # A password the server (trust authentication) ignores and no message may show.
    settings = dataclasses.replace(world, database=dataclasses.replace(world.database, password=SECRET))
    database = settings.database
    pipeline.score_and_recommend(_stage(settings))
    pipeline.explain_recommendations(_stage(settings))
    day = _checksums(settings)

    # During a stage: the scoring stage waits at its first read of the candidates when the server stops.
    candidates = DbtManifest.load().relation(CANDIDATES_MODEL)
    interrupted = _stage(settings)
    raised: list[BaseException] = []

    def score() -> None:
        try:
            pipeline.score_and_recommend(interrupted)
        except BaseException as err:
            raised.append(err)

    thread = threading.Thread(target=score)
    # Not `with`: leaving it would commit on a connection the server's stop has ended.
    gate = psycopg.connect(database.conninfo())
    try:
        with data.connect(settings) as observer:
            gate.execute(sql.SQL("lock table {} in access exclusive mode").format(candidates))
            thread.start()
            _wait_for(lambda: _blocked_by(observer, gate), "the stage at the gate")
            embedded_db.stop(settings)
    finally:
        gate.close()
    thread.join(timeout=60)
    assert not thread.is_alive() and len(raised) == 1
    during = str(raised[0])
    assert isinstance(raised[0], ConnectionError), repr(raised[0])
    assert "lost the connection" in during and "stage 'score'" in during

    # Between stages: the next stage cannot connect.
    between = _stage(settings)
    with pytest.raises(ConnectionError) as error:
        pipeline.explain_recommendations(between)
    for message in (during, str(error.value)):
        assert f"{database.host}:{database.port}/{database.dbname}" in message
        assert "offerrank db start" in message
        assert SECRET not in message

    embedded_db.start(settings)
    assert _checksums(settings) == day
    assert _stage_status(settings, between.run_id) == []  # nothing logged, nothing half-written
    assert _stage_status(settings, interrupted.run_id) == [("score", "running")]
    rerun = _stage(settings)
    pipeline.score_and_recommend(rerun)
    pipeline.explain_recommendations(rerun)
    assert _stage_status(settings, rerun.run_id) == [("explain", "success"), ("score", "success")]
    assert _checksums(settings) == day
