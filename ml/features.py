"""Which columns are model features and where the feature marts live, read from the dbt manifest.

The feature list is declared once, in the dbt YAML (`meta: {feature: true}` on a column), so an
analyst adds a feature by adding a documented column to the SQL, with no Python edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from psycopg import sql

from ml.config import WAREHOUSE_DIR

TRAINING_MODEL = "fct_training_examples"
CANDIDATES_MODEL = "fct_scoring_candidates"
RUN_DATE_MODEL = "dim_run_date"


class ManifestError(RuntimeError):
    """The dbt manifest is missing or does not describe the feature marts."""


@dataclass(frozen=True)
class DbtManifest:
    path: Path

    @classmethod
    def load(cls, project_dir: Path = WAREHOUSE_DIR) -> DbtManifest:
        path = project_dir / "target" / "manifest.json"
        if not path.exists():
            raise ManifestError(f"{path} is missing: run `dbt parse` in {project_dir} first")
        return cls(path)

    @cached_property
    def _nodes(self) -> dict[str, dict]:
        manifest = json.loads(self.path.read_text())
        return {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}

    def _model(self, name: str) -> dict:
        try:
            return self._nodes[name]
        except KeyError:
            raise ManifestError(f"dbt model {name!r} is not in {self.path}") from None

    def relation(self, model: str) -> sql.Identifier:
        """The schema-qualified table a model builds, quoted."""
        node = self._model(model)
        return sql.Identifier(node["schema"], node.get("alias") or node["name"])

    def feature_columns(self, model: str = TRAINING_MODEL) -> list[str]:
        """The columns of `model` marked `meta: {feature: true}`, in the order the YAML lists them."""
        columns = self._model(model)["columns"]
        features = [
            name
            for name, column in columns.items()
            if (column.get("meta") or {}).get("feature") or (column.get("config", {}).get("meta") or {}).get("feature")
        ]
        if not features:
            raise ManifestError(f"dbt model {model!r} declares no feature columns (meta: {{feature: true}})")
        return features
