"""Dagster resources, built from the same settings `ml/config.py` reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource
from dbt.version import __version__ as dbt_version
from packaging import version

from ml import data
from ml.config import Settings, load_settings
from orchestration.project import warehouse_project


class WarehouseResource(ConfigurableResource):
    """The warehouse the `ml` stages read and write. Connection settings come from the environment
    (PG* variables or the embedded default), so no credential ever enters Dagster config or metadata.

    A run holds the warehouse's run lock (`ml.data.warehouse_lock`) from its first step to its end:
    the definitions use the in-process executor, so the resource is set up once per run. With
    `shared_lock` (the sharded scoring location), it holds the lock in shared mode: such runs go
    side by side, and never beside a run that holds it exclusively.
    """

    shared_lock: bool = False

    def settings(self) -> Settings:
        return load_settings()

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[WarehouseResource]:
        settings = self.settings()
        run = context.run
        date = run.tags.get("dagster/partition", "no date") if run else "no date"
        holder = f"offerrank run {run.run_id[:8] if run else '-'} for {date}"
        log = context.log
        if log is not None:
            log.info(f"taking the warehouse run lock as '{holder}'")
        with data.warehouse_lock(settings, holder, settings.lock_wait_seconds, shared=self.shared_lock):
            yield self


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two costs of every invocation that buy offerrank
    nothing, about 8 seconds a dbt step:

    - dbt's version comes from the dbt-core installed beside it, not from a `dbt --version`
      subprocess (a second interpreter that imports dbt and looks up the latest release);
    - no in-process dbt adapter is opened: dagster-dbt uses it only for `fetch_row_counts()` and
      `fetch_column_metadata()`, which offerrank does not call (without it they add nothing).

    Both are dagster-dbt's private methods; tests/orchestration/test_definitions.py fails if
    dagster-dbt stops using them.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt_version)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def build_resources() -> dict[str, object]:
    return {
        "dbt": WarehouseDbtResource(project_dir=warehouse_project),
        "warehouse": WarehouseResource(),
    }


def build_shard_resources() -> dict[str, object]:
    """The sharded scoring location's: the warehouse alone, its run lock shared between shards."""
    return {"warehouse": WarehouseResource(shared_lock=True)}
