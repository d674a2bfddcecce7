"""Benchmark: what Dagster's SQLite run storage costs a run, on disk and in memory (tmpfs).

    .venv/bin/python bench/dagster_run_storage.py --repeat 3

Runs a job shaped like offerrank's dbt step — one multi-asset with 40 models and 180 asset
checks, about 670 events — in process, against a fresh DAGSTER_HOME in each folder given
(default: the system temporary folder and /dev/shm), and against Dagster's in-memory instance as
the floor. Prints the wall seconds of each run. The suite keeps its DAGSTER_HOME in /dev/shm
(tests/conftest.py) because of what this shows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetSpec,
    DagsterInstance,
    Definitions,
    JobDefinition,
    Output,
    define_asset_job,
    in_process_executor,
    multi_asset,
)

from orchestration.run_history import EARLIER_INSTANCE_CONFIG, instance_config

MODELS = 40
CHECKS = 180
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # the events are stored all the same


def shaped_job(models: int = MODELS, checks: int = CHECKS) -> JobDefinition:
    """One multi-asset of `models` models (model_i) and `checks` passing asset checks (check_j, on
    model j mod `models`), in process: the shape of offerrank's dbt step."""

    @multi_asset(
        specs=[AssetSpec(f"model_{i}") for i in range(models)],
        check_specs=[AssetCheckSpec(f"check_{j}", asset=f"model_{j % models}") for j in range(checks)],
    )
    def dbt_shaped_models() -> Iterator[Output | AssetCheckResult]:
        for i in range(models):
            yield Output(None, output_name=f"model_{i}", metadata={"rows": i})
        for j in range(checks):
            yield AssetCheckResult(asset_key=f"model_{j % models}", check_name=f"check_{j}", passed=True)

    definitions = Definitions(
        assets=[dbt_shaped_models], jobs=[define_asset_job("dbt_shaped")], executor=in_process_executor
    )
    return definitions.resolve_job_def("dbt_shaped")


def _seconds(job: JobDefinition, instance: DagsterInstance) -> tuple[float, int]:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=True)
    return time.perf_counter() - started, len(instance.all_logs(result.run_id))


@contextmanager
def _sqlite_instance(folder: Path, *, dagster_default: bool) -> Iterator[DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="dagster-bench-", dir=folder) as home:
        config = EARLIER_INSTANCE_CONFIG if dagster_default else instance_config(Path(home))
        (Path(home) / "dagster.yaml").write_text(config)
        os.environ["DAGSTER_HOME"] = home
        with DagsterInstance.get() as instance:
            yield instance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per storage")
    parser.add_argument(
        "--folder", type=Path, action="append", help="where to put DAGSTER_HOME (repeatable; default: tmp and /dev/shm)"
    )
    args = parser.parse_args()
    folders = args.folder or [Path(tempfile.gettempdir()), Path("/dev/shm")]
    job = shaped_job()
    storages = {}
    for folder in folders:
        storages[f"sqlite in {folder}, Dagster's"] = partial(_sqlite_instance, folder, dagster_default=True)
        storages[f"sqlite in {folder}, offerrank's"] = partial(_sqlite_instance, folder, dagster_default=False)
    storages["in memory (floor)"] = DagsterInstance.ephemeral
    print(f"{'storage':<36} {'events':>7} {'median s':>9}  runs (s)")
    for name, make_instance in storages.items():
        with make_instance() as instance:
            runs = [_seconds(job, instance) for _ in range(args.repeat)]
        seconds = [wall for wall, _ in runs]
        print(
            f"{name:<36} {runs[0][1]:>7} {statistics.median(seconds):>9.2f}  "
            + " ".join(f"{wall:.2f}" for wall in seconds)
        )


if __name__ == "__main__":
    main()
