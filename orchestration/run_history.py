"""Dagster's run history (DAGSTER_HOME) in SQLite, with one SQLAlchemy engine per database file.

Dagster's `SqliteEventLogStorage` creates a new engine for every connection it opens, about five
per event, and for every check that a table exists. An engine holds SQLAlchemy's
compiled-statement cache, so every statement was compiled afresh. Here an engine lives as long as
the storage, for the most recently used files. Connections are still not pooled, so the files are
opened and locked as before, and their layout is Dagster's own. The figures are in
docs/performance.md, "Dagster's run history" (bench/dagster_run_storage.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

# A run's events go to its own file and asset events also to the index: a few engines are in use
# at once. The bound keeps a webserver that reads thousands of runs from holding an engine each.
ENGINES_KEPT = 16


def _sync_at_checkpoints(connection: sqlite3.Connection, _record: object) -> None:
    # Dagster's files are in WAL mode, where SQLite's own advice is synchronous=NORMAL: a commit no
    # longer waits for the disk, the file stays consistent, and a power cut (not a crash) can lose
    # the last events. The default (FULL) syncs at every commit.
    connection.execute("pragma synchronous = normal")


class EngineKeepingSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that keeps the engines of the database files it used last."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        # Its own lock: Dagster calls has_table while it holds _db_lock for a connection.
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, str]
    ) -> EngineKeepingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.pop(shard, None)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=NullPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                event.listen(engine, "connect", _sync_at_checkpoints)
            self._engines[shard] = engine
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def dispose(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


# What offerrank wrote into a new DAGSTER_HOME before; such a file is brought up to date.
EARLIER_INSTANCE_CONFIG = "telemetry:\n  enabled: false\n"


def instance_config(dagster_home: Path) -> str:
    """The dagster.yaml offerrank writes into a new DAGSTER_HOME."""
    config = {
        # There is no network to send telemetry to.
        "telemetry": {"enabled": False},
        # Where Dagster's default puts the event logs, so a home written before reads the same.
        "event_log_storage": {
            "module": __name__,
            "class": EngineKeepingSqliteEventLogStorage.__name__,
            "config": {"base_dir": str(dagster_home / "history" / "runs")},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def prepare_dagster_home(dagster_home: Path) -> None:
    """Create DAGSTER_HOME with offerrank's dagster.yaml, leaving a dagster.yaml of the user's own."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists() or config.read_text() == EARLIER_INSTANCE_CONFIG:
        config.write_text(instance_config(dagster_home))
