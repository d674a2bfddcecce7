"""Which columns are model features and where the feature marts live, read from the dbt manifest.

The feature list is declared once, in the dbt YAML of the feature marts (`config: {meta: {feature:
true}}` on a column). The fct_ models select those columns (macros/feature_columns.sql) and this
module reads the same flags, so an analyst adds a feature by adding a documented column to a
feature mart's SQL, with no Python edit.

A feature that is a category (a text column, such as a business type) is flagged `categorical:
true` as well (`config: {meta: {feature: true, categorical: true}}`): `categorical_feature_columns`
lists those, for a model that encodes them as categories rather than numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from psycopg import sql

from ml.config import WAREHOUSE_DIR, dbt_target_path

TRAINING_MODEL = "fct_training_examples"
CANDIDATES_MODEL = "fct_scoring_candidates"
# on demand, for the off-policy estimate: the window's logged visits, and the served impressions
VISIT_CANDIDATES_MODEL = "fct_logged_visit_candidates"
SERVED_IMPRESSIONS_MODEL = "fct_served_impressions"
RUN_DATE_MODEL = "dim_run_date"
OFFER_FEATURES_MODEL = "feat_offer_daily"  # one row per offer and day: the day's catalogue
# The dbt tag of the reporting models, built from the ml tables after the Python stages (warehouse/selectors.yml).
REPORTING_TAG = "reporting"


class ManifestError(RuntimeError):
    """The dbt manifest is missing or does not describe the feature marts."""


@dataclass(frozen=True)
class DbtManifest:
    path: Path

    @classmethod
    def load(cls, project_dir: Path = WAREHOUSE_DIR) -> DbtManifest:
        path = dbt_target_path(project_dir) / "manifest.json"
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

    def content_hash(self) -> str:
        """A sha256 of every model's SQL checksum and its columns' meta (the feature flags), the
        reporting models (tag `reporting`, built from the ml outputs) left out: they cannot change
        what a model is trained on.

        The same SQL and YAML flags give the same hash whenever and wherever `dbt parse` ran
        (unlike the manifest file, which records its own time), so the registry can tell which
        feature definitions trained a model.
        """
        definitions = sorted(
            (
                name,
                node["checksum"]["checksum"],
                sorted((column, _meta(spec)) for column, spec in node["columns"].items()),
            )
            for name, node in self._nodes.items()
            if REPORTING_TAG not in node.get("tags", ())
        )
        return hashlib.sha256(json.dumps(definitions, sort_keys=True).encode()).hexdigest()

    def relation(self, model: str) -> sql.Identifier:
        """The schema-qualified table a model builds, quoted."""
        node = self._model(model)
        return sql.Identifier(node["schema"], node.get("alias") or node["name"])

    def tables_tagged(self, tag: str) -> list[str]:
        """The models with dbt tag `tag` that build tables (not views), by name."""
        return sorted(
            name
            for name, node in self._nodes.items()
            if tag in node.get("tags", []) and node["config"].get("materialized") in ("table", "incremental")
        )

    def feature_columns(self, model: str = TRAINING_MODEL) -> list[str]:
        """The model features `model` selects: the flagged columns of the models it refs, in ref order.

        Within a feature mart the order is the YAML's, as in macros/feature_columns.sql.
        """
        return list(self._feature_metas(model))

    def mart_feature_columns(self, mart: str) -> list[str]:
        """The columns feature mart `mart` itself flags as model features, in its YAML order."""
        return [name for name, column in self._model(mart)["columns"].items() if _meta(column).get("feature")]

    def categorical_feature_columns(self, model: str = TRAINING_MODEL) -> list[str]:
        """The model features of `model` flagged `categorical: true` (text categories), in `feature_columns` order."""
        return [name for name, meta in self._feature_metas(model).items() if meta.get("categorical")]

    def _feature_metas(self, model: str) -> dict[str, dict]:
        """The meta of each model feature `model` selects, by column name, in `feature_columns` order."""
        upstream = dict.fromkeys(ref["name"] for ref in self._model(model)["refs"])
        features = {
            name: meta
            for upstream_model in upstream
            for name, column in self._model(upstream_model)["columns"].items()
            if (meta := _meta(column)).get("feature")
        }
        if not features:
            raise ManifestError(
                f"no model that dbt model {model!r} refs flags a feature column (config: {{meta: {{feature: true}}}})"
            )
        return features


def _meta(column: dict) -> dict:
    """A column's meta, wherever the YAML put it (`meta:` or `config: {meta:}`)."""
    return {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
