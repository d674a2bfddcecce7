"""Session fixtures: one embedded PostgreSQL on its own port and data folder, never the demo's."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ml import data, embedded_db
from ml.config import PROFILES_DIR, WAREHOUSE_DIR, Settings, dbt_target_path, load_settings
from ml.generate import GeneratorParams, generate_all
from orchestration.dbt_builds import RUN_PARAMETERS
from orchestration.run_history import prepare_dagster_home

# The dbt marts BI reads over the ml tables (models/marts/reporting/).
REPORTING_MARTS = (
    "fct_latest_recommendations",
    "fct_model_performance_daily",
    "fct_feature_drift_daily",
    "fct_experiment_results",
)

# Small enough for a quick suite, large enough that a model finds the signal.
TEST_DATA = GeneratorParams(customers=400, products=120, offers=30, days=90, seed=11)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs one worker per core), each worker has its own server
    (the session fixtures) and its own dbt target and log folders, so that two dbt invocations
    never write one manifest. Set before collection: orchestration.project reads it at import."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is not None:
        os.environ["DBT_TARGET_PATH"] = f"target/pytest-{worker}"
        os.environ["DBT_LOG_PATH"] = str(WAREHOUSE_DIR / "logs" / f"pytest-{worker}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _in_memory_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder in memory (tmpfs) where the machine has one, else in pytest's temporary folder.

    The test server's data and Dagster's run storage live there: SQLite and the server sync to
    disk (a run of 669 events takes 1.7 times as long on disk, bench/dagster_run_storage.py), and
    a test's data need not survive a power cut. Both folders together hold about 0.6 GB a worker."""
    shared_memory = Path("/dev/shm")
    if shared_memory.is_dir() and os.access(shared_memory, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=f"offerrank-{name}-", dir=shared_memory))
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The test server: embedded, in a temporary home, on a free port. Tears down at the end."""
    saved = dict(os.environ)
    # and the run parameters (warehouse/macros/run_parameter.sql): a test passes its own
    for name in (*("PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"), *RUN_PARAMETERS):
        os.environ.pop(name, None)
    homes = [_in_memory_folder(tmp_path_factory, name) for name in ("offerrank-home", "dagster-home")]
    os.environ["OFFERRANK_HOME"], os.environ["DAGSTER_HOME"] = (str(home) for home in homes)
    prepare_dagster_home(homes[1])  # the run history as `offerrank run` keeps it, for the tests that read it
    os.environ["PGPORT"] = str(free_port())
    settings = load_settings()
    embedded_db.start(settings)
    try:
        yield settings
    finally:
        embedded_db.stop(settings)
        for home in homes:
            if not home.is_relative_to(tmp_path_factory.getbasetemp()):
                shutil.rmtree(home, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)


def use_database(server: Settings, name: str, template: str | None = None) -> Settings:
    """Create database `name` on the test server, empty or a copy of database `template`, and
    point the environment at it."""
    create = sql.SQL("create database {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("{} template {}").format(create, sql.Identifier(template))
    with psycopg.connect(server.database.conninfo(dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(create)
    os.environ["PGDATABASE"] = name
    return load_settings()


def dbt(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run dbt on the project against the database the environment points at, as `dbt *args` would.

    In this process, through dbt's programmatic API: a `dbt` subprocess spends about 4 s of CPU
    importing dbt before it starts, and the suite runs dbt some forty times. The result is the
    CLI's: its exit code (1 for a failed node, 2 for an error) and what it printed.
    """
    from dbt.cli.main import dbtRunner  # dbt loads only in the workers whose tests run it

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = dbtRunner().invoke([*args, "--project-dir", str(WAREHOUSE_DIR), "--profiles-dir", str(PROFILES_DIR)])
    exit_code = 0 if result.success else 2 if result.exception is not None else 1
    completed = subprocess.CompletedProcess(["dbt", *args], exit_code, printed.getvalue(), "")
    if check:
        completed.check_returncode()
    return completed


def compiled_models(kind: str = "compiled") -> Path:
    """Where dbt's last command wrote the SQL of the project's models/ (and, beside each YAML file,
    of its tests): compiled (`kind` "compiled") or as run, with the materializations' statements ("run")."""
    return dbt_target_path() / kind / "offerrank" / "models"


def model_sql(folder: str, model: str, kind: str = "compiled") -> str:
    """Model `model`'s SQL (in models/`folder`) as dbt's last command wrote it (`compiled_models`)."""
    return (compiled_models(kind) / folder / f"{model}.sql").read_text()


@pytest.fixture(scope="session")
def generated_world() -> tuple[dict, dict]:
    """The test world's raw tables and its ground truth."""
    return generate_all(TEST_DATA)


@pytest.fixture(scope="session")
def generated_data(generated_world) -> dict:
    return generated_world[0]


def load_generated(settings: Settings, frames: dict, truth: dict | None = None) -> None:
    with data.connect(settings) as conn:
        data.replace_raw_tables(conn, settings.raw_schema, frames)
        if truth is not None:
            data.replace_truth_tables(conn, settings.truth_schema, truth)


@pytest.fixture(scope="session")
def built_warehouse(server: Settings, generated_data) -> tuple[Settings, subprocess.CompletedProcess[str]]:
    """Database `dbt_build` with the test world loaded and a plain `dbt build` run on it, once.

    Returns its settings and the build's result (which may have failed: the tests say so). A
    test that runs dbt on it again points the environment back at it (`PGDATABASE`)."""
    settings = use_database(server, "dbt_build")
    load_generated(settings, generated_data)
    return settings, dbt("build", check=False)


def in_use(built: tuple[Settings, subprocess.CompletedProcess[str]]) -> Settings:
    """The settings of a built warehouse (`built_warehouse`), whose build must have passed, with
    the environment pointed back at it: dbt and `load_settings` read PGDATABASE, which a test on
    a copy (`use_database`) moves."""
    settings, build = built
    assert build.returncode == 0, build.stdout[-3000:]
    os.environ["PGDATABASE"] = settings.database.dbname
    return settings


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """A parsed dbt project: dagster-dbt and `ml.features` read target/manifest.json."""
    dbt("parse", "--quiet")
    return dbt_target_path() / "manifest.json"


def drop_raw_constraints(conn: psycopg.Connection, schema: str) -> None:
    """Leave the raw tables as an external loader's: no primary keys, checks or not-null columns."""
    constraints = conn.execute(
        "select class.relname, constraints.conname from pg_constraint as constraints"
        " inner join pg_class as class on constraints.conrelid = class.oid"
        # not-null constraints (PostgreSQL 18 lists them here too) go with the columns' `drop not null`
        " where constraints.connamespace = %s::regnamespace and constraints.contype <> 'n'",
        (schema,),
    ).fetchall()
    required = conn.execute(
        "select table_name, column_name from information_schema.columns where table_schema = %s and is_nullable = 'NO'",
        (schema,),
    ).fetchall()
    drops = [
        sql.SQL("alter table {} drop constraint {}").format(sql.Identifier(schema, table), sql.Identifier(name))
        for table, name in constraints
    ] + [
        sql.SQL("alter table {} alter column {} drop not null").format(
            sql.Identifier(schema, table), sql.Identifier(column)
        )
        for table, column in required
    ]
    for drop in drops:
        conn.execute(drop)


def insert_raw_rows(conn: psycopg.Connection, settings: Settings, table: str, rows: list[dict[str, object]]) -> None:
    """Insert a few hand-made rows into a raw table (a test's bad rows: not the loader's path)."""
    for row in rows:
        conn.execute(
            sql.SQL("insert into {} ({}) values ({})").format(
                sql.Identifier(settings.raw_schema, table),
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            list(row.values()),
        )
