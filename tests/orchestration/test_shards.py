"""Scoring by customer shard gives the unsharded day: the same scores, lists, shadow rows, first
exposures and shadow agreement, each customer in one shard, and a shard's run touching only its
customers. Also through Dagster (orchestration/sharded.py), and the shared run lock the shards hold.

It reuses the session's built warehouse (`built_warehouse`: the test world with a full dbt build),
copied as a database of its own, and trains two real models on it (logistic regression and
LightGBM) so that every variant and a shadow serve: treatment the champion, canary and shadow the
challenger, control the heuristic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from ml import checks, data, pipeline
from ml.config import ModelPolicy, Settings, Shard, TrainingConfig, load_settings
from ml.features import CANDIDATES_MODEL, DbtManifest

SHARDS = 3
# The tables a scored day writes, with their keys; the agreement is per date, not per customer.
BY_CUSTOMER = {
    "offer_scores": ["customer_id", "offer_id"],
    "recommendations": ["customer_id", "rank"],
    "shadow_recommendations": ["customer_id", "rank"],
}
AGREEMENT_KEYS = ["variant"]


@dataclasses.dataclass(frozen=True)
class World:
    settings: Settings
    manifest: DbtManifest
    run_date: dt.date
    unsharded: dict[str, pd.DataFrame]  # the day as the unsharded stage wrote it


@pytest.fixture(scope="module")
def world(server: Settings, built_warehouse) -> Iterator[World]:
    source, build = built_warehouse
    assert build.returncode == 0, build.stdout[-2000:]
    with psycopg.connect(server.database.conninfo(dbname="postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists shards with (force)")
        conn.execute(sql.SQL("create database shards template {}").format(sql.Identifier(source.database.dbname)))
    with pytest.MonkeyPatch.context() as env:
        # the environment, so that the Dagster runs' resource reads the same settings
        for name, value in {
            "PGDATABASE": "shards",
            "OFFERRANK_EXPERIMENT": "shards",
            "OFFERRANK_TREATMENT_SHARE": "0.7",
            "OFFERRANK_CANARY_SHARE": "0.2",
            "OFFERRANK_SHADOW": "on",
        }.items():
            env.setenv(name, value)
        settings = load_settings()
        manifest = DbtManifest.load()
        stage = pipeline.StageRun(settings, "shards-train", manifest)
        outcome = pipeline.train_models(stage, TrainingConfig(algorithms=("logreg", "lgbm_binary")), ModelPolicy())
        assert outcome.promoted, outcome.reason
        pipeline.score_and_recommend(_stage(settings, manifest))
        with data.connect(settings) as conn:
            run_date = pipeline.run_date(conn, manifest)
        unsharded = _day(settings, run_date)
        assert set(unsharded["recommendations"]["variant"]) == {"treatment", "canary", "control"}
        assert len(unsharded["shadow_recommendations"]) and len(unsharded["shadow_agreement"]) == 4
        yield World(settings, manifest, run_date, unsharded)


def _stage(settings: Settings, manifest: DbtManifest) -> pipeline.StageRun:
    return pipeline.StageRun(settings, f"shards-{uuid.uuid4()}", manifest)


def _score(world: World, index: int, **changes: object) -> dict[str, object]:
    settings = dataclasses.replace(world.settings, **changes)
    return pipeline.score_and_recommend(_stage(settings, world.manifest), Shard(index, SHARDS))


def _day(settings: Settings, run_date: dt.date) -> dict[str, pd.DataFrame]:
    """The date's rows of every table a scored day writes, and the experiment's assignments, in key order."""
    schema = settings.ml_schema
    with data.connect(settings) as conn:
        day = {
            table: data.date_rows(conn, schema, table, "score_date", run_date).sort_values(keys, ignore_index=True)
            for table, keys in {**BY_CUSTOMER, "shadow_agreement": AGREEMENT_KEYS}.items()
        }
        day["experiment_assignments"] = data.copy_out(
            conn,
            sql.SQL("select * from {} where experiment_id = %s order by customer_id").format(
                sql.Identifier(schema, "experiment_assignments")
            ),
            (settings.experiment.experiment_id,),
        )
    return day


def _customers(world: World, shard: Shard) -> set[int]:
    """The customers of `shard` among the run date's candidates."""
    with data.connect(world.settings) as conn:
        rows = conn.execute(
            sql.SQL("select distinct customer_id from {} where as_of_date = %s and {}").format(
                world.manifest.relation(CANDIDATES_MODEL), data.shard_filter(shard)
            ),
            (world.run_date,),
        ).fetchall()
    return {customer_id for (customer_id,) in rows}


def _clear(settings: Settings, run_date: dt.date, assignments: bool = False) -> None:
    with data.connect(settings) as conn:
        for table in [*BY_CUSTOMER, "shadow_agreement"]:
            conn.execute(
                sql.SQL("delete from {} where score_date = %s").format(sql.Identifier(settings.ml_schema, table)),
                (run_date,),
            )
        if assignments:
            conn.execute(sql.SQL("delete from {}").format(sql.Identifier(settings.ml_schema, "experiment_assignments")))


def _assert_same_rows(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], tables) -> None:
    for table in tables:
        pd.testing.assert_frame_equal(actual[table], expected[table], obj=table)


def _assert_same_agreement(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal but for the order in which the overlaps were summed (chunks against one sum)."""
    pd.testing.assert_frame_equal(actual.drop(columns="overlap_at_k"), expected.drop(columns="overlap_at_k"))
    assert actual["overlap_at_k"].to_numpy() == pytest.approx(expected["overlap_at_k"].to_numpy(), rel=1e-12)


def test_each_customer_is_in_one_shard_and_the_shards_union_is_the_unsharded_day(world):
    settings, run_date, unsharded = world.settings, world.run_date, world.unsharded
    _clear(settings, run_date, assignments=True)
    alone = []
    for index in range(SHARDS):  # each shard on an empty date: exactly its own rows
        _clear(settings, run_date)
        counts = _score(world, index)
        day = _day(settings, run_date)
        assert counts["candidate_pairs"] == len(day["offer_scores"]) > 0
        alone.append(day)
    customers = [set(day["offer_scores"]["customer_id"]) for day in alone]
    assert sum(map(len, customers)) == len(set().union(*customers)), "a customer is in two shards"
    assert set().union(*customers) == set(unsharded["offer_scores"]["customer_id"])
    for table, keys in BY_CUSTOMER.items():
        union = pd.concat([day[table] for day in alone]).sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(union, unsharded[table], obj=table)
    # first exposures are per customer: the shards add those of the unsharded run
    pd.testing.assert_frame_equal(alone[-1]["experiment_assignments"], unsharded["experiment_assignments"])

    for index in range(SHARDS - 1):  # the last shard's rows are there: the rest join them
        _score(world, index)
    whole = _day(settings, run_date)
    _assert_same_rows(whole, unsharded, [*BY_CUSTOMER, "experiment_assignments"])
    # the date's agreement, by the last shard to commit, is over every shard's lists
    _assert_same_agreement(whole["shadow_agreement"], unsharded["shadow_agreement"])


def _whole_day(world: World) -> None:
    """Score every shard, unless each candidate pair of the date has its score already."""
    with data.connect(world.settings) as conn:
        candidates = data.date_row_count(conn, world.manifest.relation(CANDIDATES_MODEL), "as_of_date", world.run_date)
        scores = data.date_row_count(
            conn, sql.Identifier(world.settings.ml_schema, "offer_scores"), "score_date", world.run_date
        )
    if scores != candidates:
        for index in range(SHARDS):
            _score(world, index)


def test_rerunning_a_shard_changes_nothing(world):
    _whole_day(world)
    before = _day(world.settings, world.run_date)
    counts = _score(world, 1)
    assert counts["new_assignments"] == 0
    after = _day(world.settings, world.run_date)
    _assert_same_rows(after, before, [*BY_CUSTOMER, "shadow_agreement", "experiment_assignments"])


def test_a_shards_run_replaces_its_customers_rows_and_leaves_the_other_shards_alone(world):
    _whole_day(world)
    before = _day(world.settings, world.run_date)
    _score(world, 1, top_k=2)  # shard 1's lists get shorter
    after = _day(world.settings, world.run_date)
    in_shard = _customers(world, Shard(1, SHARDS))

    def others(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["customer_id"].isin(in_shard)].reset_index(drop=True)

    for table in ("recommendations", "shadow_recommendations"):
        pd.testing.assert_frame_equal(others(after[table]), others(before[table]), obj=table)
        mine = after[table][after[table]["customer_id"].isin(in_shard)]
        assert len(mine) and mine["rank"].max() == 2
        assert len(mine) < (before[table]["customer_id"].isin(in_shard)).sum()
    _score(world, 1)  # back as it was
    _assert_same_rows(_day(world.settings, world.run_date), before, BY_CUSTOMER)


def test_shards_committing_at_once_leave_the_agreement_over_every_shard(world):
    """Two shards reach the date's shadow agreement together (the test holds its lock until both
    wait for it): whichever commits last writes the agreement over all three shards' lists."""
    settings, run_date = world.settings, world.run_date
    _clear(settings, run_date)
    _score(world, 2)
    agreement = sql.Identifier(settings.ml_schema, "shadow_agreement")
    with (
        data.connect(settings) as blocker,
        data.connect(settings) as observer,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        with blocker.transaction():
            blocker.execute(sql.SQL("lock table {} in share row exclusive mode").format(agreement))
            runs = [pool.submit(_score, world, index) for index in (0, 1)]
            deadline = time.monotonic() + 120
            while _waiting_for(blocker, observer) < 2:
                assert time.monotonic() < deadline and not any(run.done() for run in runs), "no two shards waiting"
                time.sleep(0.05)
        for run in runs:
            run.result()
    whole = _day(settings, run_date)
    _assert_same_rows(whole, world.unsharded, BY_CUSTOMER)
    _assert_same_agreement(whole["shadow_agreement"], world.unsharded["shadow_agreement"])


def _waiting_for(blocker: psycopg.Connection, observer: psycopg.Connection) -> int:
    """How many sessions wait at the agreement's turn (`data.replace_scored_day`) for the lock `blocker`
    holds, as `observer` sees them (outside a transaction, whose view of pg_stat_activity would not change)."""
    return observer.execute(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and %s = any(pg_blocking_pids(pid))"
        " and query like 'lock table %%'",
        (blocker.info.backend_pid,),
    ).fetchone()[0]


def test_the_shard_checks_judge_their_own_customers(world):
    _whole_day(world)
    stage = _stage(world.settings, world.manifest)
    for index in range(SHARDS):
        assert checks.scores_cover_candidates(stage, Shard(index, SHARDS)).passed
        assert checks.every_eligible_customer_recommended(stage, Shard(index, SHARDS)).passed
    assert checks.scores_cover_candidates(stage).passed
    # shard 2 loses a customer's rows: its checks fail, the other shards' pass
    schema = world.settings.ml_schema
    with data.connect(world.settings) as conn:
        (customer_id,) = conn.execute(
            sql.SQL("select min(customer_id) from {} where as_of_date = %s and {}").format(
                world.manifest.relation(CANDIDATES_MODEL), data.shard_filter(Shard(2, SHARDS))
            ),
            (world.run_date,),
        ).fetchone()
        for table in ("offer_scores", "recommendations"):
            conn.execute(
                sql.SQL("delete from {} where score_date = %s and customer_id = %s").format(
                    sql.Identifier(schema, table)
                ),
                (world.run_date, customer_id),
            )
    outcomes = [checks.scores_cover_candidates(stage, Shard(index, SHARDS)).passed for index in range(SHARDS)]
    assert outcomes == [True, True, False]
    missing = checks.every_eligible_customer_recommended(stage, Shard(2, SHARDS))
    assert not missing.passed and str(customer_id) in missing.description and "shard 2 of 3" in missing.description
    _score(world, 2)
    assert checks.scores_cover_candidates(stage, Shard(2, SHARDS)).passed


def test_a_partition_of_the_sharded_dagster_job_writes_its_shard_of_the_unsharded_day(world):
    """A (date, shard) partition of the sharded location's job, a run of its own as a backfill
    launches it, with OFFERRANK_SCORING_SHARDS at its default; its checks run and pass."""
    from dagster import DagsterInstance, MultiPartitionKey

    from orchestration.sharded import SHARD_COUNT, SHARDED_JOB, defs

    _clear(world.settings, world.run_date)
    key = MultiPartitionKey({"date": world.run_date.isoformat(), "shard": "1"})
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(SHARDED_JOB).execute_in_process(instance=instance, partition_key=key)
    assert result.success
    checked = result.get_asset_check_evaluations()
    assert len(checked) == 2 and all(evaluation.passed for evaluation in checked)
    written = _day(world.settings, world.run_date)
    customers = _customers(world, Shard(1, SHARD_COUNT))
    for table in BY_CUSTOMER:
        expected = world.unsharded[table]
        expected = expected[expected["customer_id"].isin(customers)].reset_index(drop=True)
        assert len(expected)
        pd.testing.assert_frame_equal(written[table], expected, obj=table)


def test_shard_runs_share_the_run_lock_and_exclude_a_daily_run(world):
    settings = world.settings
    with (
        data.warehouse_lock(settings, "shard a", 0, shared=True),
        data.warehouse_lock(settings, "shard b", 0, shared=True),
        pytest.raises(data.WarehouseBusyError, match="shard"),
        data.warehouse_lock(settings, "daily", 0),
    ):
        pass
    with (
        data.warehouse_lock(settings, "daily", 0),
        pytest.raises(data.WarehouseBusyError, match="daily"),
        data.warehouse_lock(settings, "shard c", 0, shared=True),
    ):
        pass
    with data.warehouse_lock(settings, "daily", 0):  # every lock above was released
        pass
