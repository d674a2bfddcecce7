"""The run history in DAGSTER_HOME: Dagster's SQLite files, written with engines kept per file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from bench.dagster_run_storage import shaped_job
from orchestration import run_history
from orchestration.run_history import EARLIER_INSTANCE_CONFIG, EngineKeepingSqliteEventLogStorage, prepare_dagster_home

MODELS = 6


@contextmanager
def _instance(home: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def _run(instance: DagsterInstance) -> str:
    result = shaped_job(MODELS, MODELS).execute_in_process(instance=instance)
    assert result.success
    return result.run_id


def _event_types(instance: DagsterInstance, run_id: str) -> list[str]:
    return [entry.dagster_event.event_type_value for entry in instance.all_logs(run_id) if entry.dagster_event]


def test_a_run_stores_what_dagsters_storage_stores_through_one_engine_per_file(tmp_path, monkeypatch):
    created: list[str] = []
    create_engine = run_history.create_engine

    def counting_create_engine(url: str, **kwargs):
        created.append(url)
        return create_engine(url, **kwargs)

    monkeypatch.setattr(run_history, "create_engine", counting_create_engine)
    homes = {"dagster": tmp_path / "dagster", "offerrank": tmp_path / "offerrank"}
    homes["dagster"].mkdir()
    (homes["dagster"] / "dagster.yaml").write_text(EARLIER_INSTANCE_CONFIG)
    prepare_dagster_home(homes["offerrank"])
    stored = {}
    for name, home in homes.items():
        with _instance(home) as instance:
            run_id = _run(instance)
            stored[name] = _event_types(instance, run_id)
            checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [AssetCheckKey(AssetKey(f"model_{i}"), f"check_{i}") for i in range(MODELS)]
            )
            assert len(checks) == MODELS and all(execution.status.value == "SUCCEEDED" for execution in checks.values())
            assert instance.get_latest_materialization_event(AssetKey("model_3")).run_id == run_id
            if name == "offerrank":
                assert isinstance(instance.event_log_storage, EngineKeepingSqliteEventLogStorage)
    assert stored["offerrank"] == stored["dagster"]
    assert len(stored["offerrank"]) > 30
    # the index and the run's own file, each once, for every one of the run's events
    assert sorted(Path(url).name for url in created) == sorted(["index.db", f"{run_id}.db"])


def test_a_home_written_before_reads_the_same_runs(tmp_path):
    (tmp_path / "dagster.yaml").write_text(EARLIER_INSTANCE_CONFIG)
    with _instance(tmp_path) as instance:
        assert not isinstance(instance.event_log_storage, EngineKeepingSqliteEventLogStorage)
        run_id = _run(instance)
        before = _event_types(instance, run_id)
    prepare_dagster_home(tmp_path)
    with _instance(tmp_path) as instance:
        assert isinstance(instance.event_log_storage, EngineKeepingSqliteEventLogStorage)
        assert _event_types(instance, run_id) == before
        assert instance.get_latest_materialization_event(AssetKey("model_0")).run_id == run_id
        assert instance.get_run_by_id(run_id).is_success


def test_engines_beyond_the_bound_are_let_go_and_every_run_stays_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(run_history, "ENGINES_KEPT", 2)
    prepare_dagster_home(tmp_path)
    with _instance(tmp_path) as instance:
        run_ids = [_run(instance) for _ in range(3)]
        assert len(instance.event_log_storage._engines) == 2
        assert all(_event_types(instance, run_id)[-1] == "PIPELINE_SUCCESS" for run_id in run_ids)


def test_a_dagster_yaml_of_the_users_own_is_left_alone(tmp_path):
    own = "telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 1\n"
    (tmp_path / "dagster.yaml").write_text(own)
    prepare_dagster_home(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == own


@pytest.mark.parametrize("written", ["new", "before"])
def test_offerranks_dagster_yaml_keeps_the_event_logs_where_dagster_does(tmp_path, written):
    if written == "before":
        (tmp_path / "dagster.yaml").write_text(EARLIER_INSTANCE_CONFIG)
    prepare_dagster_home(tmp_path)
    with _instance(tmp_path) as instance:
        run_id = _run(instance)
        assert instance.event_log_storage._base_dir == str(tmp_path / "history" / "runs")
        assert (tmp_path / "history" / "runs" / f"{run_id}.db").is_file()
        assert not instance.get_settings("telemetry")["enabled"]
