"""The warehouse run lock (ml.data.warehouse_lock) between real processes: a second run stops with
the holder's name or waits its turn, a killed holder frees the lock, other ml schemas do not wait."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from ml import data
from ml.config import Settings
from tests.conftest import use_database

HOLD = """
import sys, time
from ml import data
from ml.config import load_settings
with data.warehouse_lock(load_settings(), "offerrank run holder-1 for 2026-06-30", 0):
    print("held", flush=True)
    sys.stdin.readline()  # holds the lock until the test writes a line (or kills it)
"""


@pytest.fixture
def holder(server: Settings) -> Iterator[tuple[Settings, subprocess.Popen[str]]]:
    """A process holding the lock of database `run_lock`'s ml schema until it reads a line or is killed."""
    settings = use_database(server, "run_lock")
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield settings, process
    finally:
        process.kill()
        process.wait()


def test_a_second_run_stops_naming_the_run_that_holds_the_lock(holder):
    settings, _ = holder
    with (
        pytest.raises(data.WarehouseBusyError) as refused,
        data.warehouse_lock(settings, "offerrank run second", wait_seconds=0),
    ):
        pytest.fail("two holders of one lock")
    message = str(refused.value)
    assert "another offerrank run holds the warehouse" in message and "ml schema 'ml'" in message
    assert "offerrank run holder-1 for 2026-06-30 (server pid" in message
    assert "OFFERRANK_LOCK_WAIT_SECONDS" in message


def test_a_waiting_run_gives_up_after_its_wait(holder):
    settings, _ = holder
    started = time.monotonic()
    with (
        pytest.raises(data.WarehouseBusyError, match="Waited 1 s"),
        data.warehouse_lock(settings, "offerrank run patient", wait_seconds=1),
    ):
        pytest.fail("two holders of one lock")
    assert time.monotonic() - started >= 1


def test_a_waiting_run_takes_the_lock_when_the_holder_finishes(holder):
    settings, process = holder
    finish = threading.Timer(1.0, lambda: (process.stdin.write("done\n"), process.stdin.flush()))
    started = time.monotonic()
    finish.start()
    with data.warehouse_lock(settings, "offerrank run next", wait_seconds=30) as conn:
        waited = time.monotonic() - started
        assert data.run_lock_holder(conn, settings.ml_schema).startswith("offerrank run next (server pid")
    finish.join()
    assert waited >= 1 and process.wait(timeout=10) == 0
    with data.connect(settings) as conn:
        assert data.run_lock_holder(conn, settings.ml_schema) is None


def test_killing_the_holder_frees_the_lock_for_the_waiting_run(holder):
    settings, process = holder
    process.send_signal(signal.SIGKILL)
    # the server notices the dead client and ends its session, advisory lock included
    with data.warehouse_lock(settings, "offerrank run next", wait_seconds=30) as conn:
        held = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and granted and pid = pg_backend_pid()"
        ).fetchone()[0]
    assert held == 1


def test_another_ml_schema_is_another_warehouse(holder):
    settings, _ = holder
    with data.connect(settings) as conn:
        assert data.run_lock_holder(conn, "ml").startswith("offerrank run holder-1 for 2026-06-30 (server pid")
        assert data.run_lock_holder(conn, "ml_other") is None
    with data.warehouse_lock(dataclasses.replace(settings, ml_schema="ml_other"), "offerrank run other", 0):
        pass
