"""Names from configuration reach PostgreSQL quoted: schemas and a role named to break out of an
unquoted statement are created under their literal names, rows go in and come back through them,
and nothing else in the database or among the roles changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, replace

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from ml import closed_loop, data
from ml.config import Settings, load_settings
from ml.generate import GeneratorParams, simulate, to_frames, truth_tables
from tests.conftest import use_database

# Pasted unquoted into a statement without parameters, the first one runs its own `drop` (psycopg
# sends such a statement as a simple query, several statements in one); the others end theirs too,
# and their quotes, spaces and capitals break a name quoted in one place and not another. All fit
# in PostgreSQL's 63 bytes.
HOSTILE = {
    "OFFERRANK_ML_SCHEMA": "ml; drop table raw.customers; --",
    "OFFERRANK_RAW_SCHEMA": "Raw Data'; drop schema raw cascade; --",
    "OFFERRANK_TRUTH_SCHEMA": 'Truth" cascade; drop table raw.customers; --',
    "OFFERRANK_READER_ROLE": 'BI "Reader"; drop role postgres; --',
}

# A tiny world: the raw tables and truth only need rows to round-trip.
TINY = GeneratorParams(customers=30, products=20, offers=5, days=20, seed=3)

Catalog = set[tuple[str, str, str]]


def _catalog(conn: psycopg.Connection) -> Catalog:
    """Every schema, relation (tables, indexes, views, sequences) and role: what an injected
    statement would add or drop, as (kind, schema or role, relation)."""
    return set(
        conn.execute(
            "select 'schema', nspname, '' from pg_namespace"
            " union all select 'relation', n.nspname, c.relname from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace where n.nspname not like 'pg\\_%'"
            " union all select 'role', rolname, '' from pg_roles"
        ).fetchall()
    )


def _victim_rows(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from raw.customers").fetchone()[0]


@pytest.fixture(scope="module")
def hostile(server: Settings) -> Iterator[tuple[Settings, psycopg.Connection]]:
    """Settings with every configured name hostile, on a fresh database whose plain `raw.customers`
    is what the names try to drop."""
    use_database(server, "hostile_names")
    with pytest.MonkeyPatch.context() as env:
        for variable, name in HOSTILE.items():
            env.setenv(variable, name)
        settings = load_settings()
        with data.connect(settings) as conn:
            conn.execute("create schema raw")
            conn.execute("create table raw.customers as select 1::bigint as customer_id")
            try:
                yield settings, conn
            finally:
                role = sql.Identifier(settings.reader_role)
                if conn.execute("select 1 from pg_roles where rolname = %s", (settings.reader_role,)).fetchone():
                    conn.execute(sql.SQL("drop owned by {}").format(role))
                    conn.execute(sql.SQL("drop role {}").format(role))


def _added_only_under(before: Catalog, after: Catalog, schemas: set[str], roles: frozenset[str] = frozenset()) -> None:
    """Nothing was dropped, and what was added lies in `schemas` or is one of `roles`."""
    assert before - after == set()
    added = after - before
    assert {name for kind, name, _ in added if kind != "role"} == schemas
    assert {name for kind, name, _ in added if kind == "role"} == roles


def test_settings_hold_the_hostile_names_verbatim(hostile):
    settings, _ = hostile
    assert (settings.ml_schema, settings.raw_schema, settings.truth_schema, settings.reader_role) == tuple(
        HOSTILE.values()
    )


def _record(model_id: str) -> data.ModelRecord:
    day = dt.date(2026, 6, 1)
    return data.ModelRecord(
        model_id=model_id, algorithm="lgbm_binary", trained_for_date=day, features=["f1", "f2"], params={"a": 1},
        train_start_date=day, train_end_date=day, valid_start_date=day, valid_end_date=day,
        metrics={"roc_auc": 0.7}, model_text="tree", calibration={"a": 1.0, "b": 0.0}, code_version="test",
    )  # fmt: skip


def test_ml_tables_are_created_written_and_read_under_a_hostile_schema_and_reader_role(hostile):
    settings, conn = hostile
    schema, role = settings.ml_schema, settings.reader_role
    before = _catalog(conn)
    for _ in range(2):  # idempotent: the second call finds the role and the tables
        data.ensure_ml_tables(conn, schema, role)
    after = _catalog(conn)
    _added_only_under(before, after, {schema}, {role})
    assert {("relation", schema, table) for table in data.OUTPUT_TABLES} <= after
    # the role is the literal name, a NOLOGIN role that may read the tables and not write them
    assert conn.execute("select rolcanlogin from pg_roles where rolname = %s", (role,)).fetchone() == (False,)
    registry = sql.Identifier(schema, "model_registry").as_string(conn)
    assert conn.execute(
        "select has_table_privilege(%s, %s, 'select'), has_table_privilege(%s, %s, 'insert')",
        (role, registry, role, registry),
    ).fetchone() == (True, False)

    # the registry: insert, promote, and read the champion back
    for model_id in ("m1", "m2"):
        data.register_model(conn, schema, _record(model_id))
    assert data.promote_model(conn, schema, "m1", reason="first")
    assert data.promote_model(conn, schema, "m2", reason="better", run_date=dt.date(2026, 6, 2))
    assert data.champion_model(conn, schema) == replace(_record("m2"), status="champion")
    assert data.registered_model(conn, schema, "m1").model_id == "m1"
    assert set(data.list_models(conn, schema)["model_id"]) == {"m1", "m2"}
    assert data.promotion_history(conn, schema)["model_id"].tolist() == ["m1", "m2"]

    # a day's scores replaced, and read back
    day = dt.date(2026, 6, 2)
    scores = pd.DataFrame(
        {"score_date": [day, day], "customer_id": [1, 1], "offer_id": [7, 8], "model_id": ["m2", "m2"],
         "score": [0.4, 0.2], "rank": [1, 2], "raw_score": [0.1, -0.3], "ranked_by": ["model", "model"]}
    )  # fmt: skip
    recommendations = scores.rename(columns={"rank": "score_rank"}).assign(rank=[1, 2])
    exposures = pd.DataFrame(
        {
            "experiment_id": ["e"],
            "customer_id": [1],
            "variant": ["treatment"],
            "assigned_at": [pd.Timestamp(day, tz="UTC")],
        }
    )
    chunk = data.ServedChunk(scores.assign(variant="treatment"), recommendations.assign(variant="treatment"), exposures)
    assert data.replace_scored_day(conn, schema, day, [chunk]) == data.ScoredDay(2, 2, 1, 0)
    # replaced, not added to; the exposure is kept from the first time
    assert data.replace_scored_day(conn, schema, day, [chunk]) == data.ScoredDay(2, 2, 0, 0)
    read = data.date_rows(conn, schema, "offer_scores", "score_date", day)
    assert read.sort_values("offer_id")["score"].tolist() == [0.4, 0.2]
    assert data.output_row_counts(conn, schema, day)["offer_scores"] == 2

    # a stage logged, and its log read back
    with data.recorded_stage(conn, schema, "run-1", "score", day) as log:
        log.counts["rows_written"] = 2
        log.message = "scored"
    (stage,) = data.stage_log(conn, schema, "run-1")
    assert (stage["step"], stage["status"], stage["message"]) == ("score", "success", "scored")

    # writing created the day's partition of offer_scores, and nothing more
    partition = {("relation", schema, "offer_scores_2026_06_02"), ("relation", schema, "offer_scores_2026_06_02_pkey")}
    assert _catalog(conn) == after | partition
    assert _victim_rows(conn) == 1


def test_raw_and_truth_tables_load_into_hostile_schemas(hostile):
    settings, conn = hostile
    raw, truth_schema, ml = settings.raw_schema, settings.truth_schema, settings.ml_schema
    world = simulate(TINY)
    frames, truth = to_frames(world), truth_tables(world) | closed_loop.initial_truth(world)
    data.ensure_ml_tables(conn, ml, settings.reader_role)  # the closed loop reads the recommendations
    before = _catalog(conn)
    data.replace_raw_tables(conn, settings.raw_schema, frames)
    # a table of another layout is found by its schema's name, dropped and rebuilt by the next load
    customers = sql.Identifier(settings.raw_schema, "customers")
    conn.execute(sql.SQL("alter table {} add column stale integer").format(customers))
    counts = data.replace_raw_tables(conn, settings.raw_schema, frames)
    assert counts == {name: len(frame) for name, frame in frames.items()}
    columns = data.copy_out(conn, sql.SQL("select * from {} limit 0").format(customers)).columns
    assert "stale" not in columns
    loaded = data.read_relation(conn, customers, ["customer_id"])
    assert sorted(loaded["customer_id"]) == sorted(frames["customers"]["customer_id"])

    data.replace_truth_tables(conn, settings.truth_schema, truth)
    impressions = frames["impressions"]["impression_id"]
    probabilities = data.read_true_probabilities(conn, settings.truth_schema, impressions)
    assert probabilities is not None and len(probabilities) == len(impressions)
    # the closed loop's reads and its one-transaction append of a day (nobody is served)
    assert data.read_generator_params(conn, truth_schema) == asdict(TINY)
    day = TINY.end_date + dt.timedelta(days=1)
    state = closed_loop.loop_state(
        data.read_loop_state(conn, raw, truth_schema, ml, day), data.raw_row_counts(conn, raw)
    )
    simulated = closed_loop.simulate_day(world, day, state)
    appended = data.append_simulated_day(
        conn, raw, truth_schema, simulated.raw, {"simulated_days": simulated.summary}, simulated.pending_redemptions
    )
    assert appended == {name: len(frame) for name, frame in simulated.raw.items()} and appended["orders"] > 0
    assert data.last_simulated_day(conn, truth_schema) == day
    assert data.served_variant_mix(conn, ml, day) == {}
    assert data.clear_truth_tables(conn, settings.truth_schema) == sorted(data.TRUTH_TABLES)
    assert data.read_true_probabilities(conn, settings.truth_schema, impressions) is None

    _added_only_under(before, _catalog(conn), {settings.raw_schema, settings.truth_schema})
    assert _victim_rows(conn) == 1
