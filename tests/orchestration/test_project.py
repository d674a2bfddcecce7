"""Under `dagster dev`, every process that loads the definitions parses the project first, in turn."""

from __future__ import annotations

import threading
import time

from filelock import FileLock

from orchestration import project


def _written(dbt_manifest) -> float:
    return dbt_manifest.stat().st_mtime


def test_outside_dagster_dev_the_manifest_is_left_as_it_is(dbt_manifest, monkeypatch):
    monkeypatch.delenv("DAGSTER_IS_DEV_CLI", raising=False)
    before = _written(dbt_manifest)
    project.prepare_if_dev()
    assert _written(dbt_manifest) == before


def test_under_dagster_dev_the_project_is_parsed_again(dbt_manifest, monkeypatch):
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    before = _written(dbt_manifest)
    project.prepare_if_dev()
    assert _written(dbt_manifest) > before
    assert project.warehouse_project.manifest_path == dbt_manifest


def test_a_process_that_waited_for_anothers_parse_uses_its_manifest(dbt_manifest, monkeypatch):
    """The lock held here stands for a run that started at the same time and parses; it writes the
    manifest before letting go. The waiting prepare_if_dev parses nothing more."""
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    with FileLock(dbt_manifest.with_name("parse.lock")):
        waiting = threading.Thread(target=project.prepare_if_dev)
        waiting.start()
        time.sleep(2)
        assert waiting.is_alive()
        time.sleep(0.05)  # a different modification time from the one the waiter saw
        dbt_manifest.touch()
        written_by_the_other = _written(dbt_manifest)
    waiting.join(timeout=120)
    assert not waiting.is_alive()
    assert _written(dbt_manifest) == written_by_the_other
