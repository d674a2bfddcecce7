"""Dagster resources, built from the same settings `ml/config.py` reads."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource

from ml.config import Settings, load_settings
from orchestration.project import warehouse_project


class WarehouseResource(ConfigurableResource):
    """The warehouse the `ml` stages read and write. Connection settings come from the environment
    (PG* variables or the embedded default), so no credential ever enters Dagster config or metadata."""

    def settings(self) -> Settings:
        return load_settings()


def build_resources() -> dict[str, object]:
    return {
        "dbt": DbtCliResource(project_dir=warehouse_project),
        "warehouse": WarehouseResource(),
    }
