"""One feature list, declared in dbt: a documented, flagged column added to a feature mart becomes a model feature."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ml import data, pipeline
from ml.config import PROFILES_DIR, WAREHOUSE_DIR, ModelPolicy, TrainingConfig, dbt_target_path
from ml.features import CANDIDATES_MODEL, TRAINING_MODEL, DbtManifest
from tests.conftest import load_generated, use_database

NEW_FEATURE = "days_since_offer_start"
NEW_FEATURE_SQL = f"(running_totals.effective_date - offers.starts_on)::integer as {NEW_FEATURE},\n        "
NEW_FEATURE_YAML = f"""      - name: {NEW_FEATURE}
        description: "Days since the offer started, as of D (0 on starts_on). Unit: days."
        data_type: integer
        config: {{meta: {{feature: true}}}}
"""


def _manifest(tmp_path: Path, models: dict[str, dict]) -> DbtManifest:
    """A hand-made manifest: model name -> {"refs": [...], "columns": {name: column}}."""
    nodes = {
        f"model.offerrank.{name}": {
            "name": name,
            "resource_type": "model",
            "schema": "marts",
            "refs": [{"name": ref} for ref in model.get("refs", [])],
            "columns": model.get("columns", {}),
        }
        for name, model in models.items()
    }
    dbt_target_path(tmp_path).mkdir(parents=True)
    (dbt_target_path(tmp_path) / "manifest.json").write_text(json.dumps({"nodes": nodes}))
    return DbtManifest.load(tmp_path)


def test_categorical_features_are_the_flagged_ones_in_feature_order(tmp_path):
    manifest = _manifest(
        tmp_path,
        {
            TRAINING_MODEL: {"refs": ["feat_customer_daily", "feat_offer_daily"]},
            "feat_customer_daily": {
                "columns": {
                    "customer_id": {},
                    "business_type": {"config": {"meta": {"feature": True, "categorical": True}}},
                    "frequency": {"config": {"meta": {"feature": True}}},
                    # categorical but not a feature: not listed
                    "region": {"config": {"meta": {"categorical": True}}},
                }
            },
            "feat_offer_daily": {
                "columns": {
                    "discount_depth": {"meta": {"feature": True, "categorical": False}},
                    # the older place for meta counts too
                    "offer_category": {"meta": {"feature": True, "categorical": True}},
                }
            },
        },
    )
    assert manifest.feature_columns() == ["business_type", "frequency", "discount_depth", "offer_category"]
    assert manifest.categorical_feature_columns() == ["business_type", "offer_category"]


def test_the_project_flags_its_text_features_categorical(dbt_manifest):
    manifest = DbtManifest.load()
    categorical = manifest.categorical_feature_columns()
    assert categorical == ["business_type", "offer_category"]
    for model in (TRAINING_MODEL, CANDIDATES_MODEL):
        features = manifest.feature_columns(model)
        assert manifest.categorical_feature_columns(model) == categorical
        assert [name for name in features if name in categorical] == categorical


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "warehouse"
    shutil.copytree(WAREHOUSE_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (tmp_path / "seeds").symlink_to(WAREHOUSE_DIR.parent / "seeds")  # seed-paths: ../seeds
    return project


def _insert_before(path: Path, anchor: str, text: str) -> None:
    content = path.read_text()
    assert content.count(anchor) >= 1, anchor
    path.write_text(content.replace(anchor, text + anchor, 1))


def test_a_documented_column_added_in_sql_becomes_a_model_feature(server, generated_data, dbt_manifest, tmp_path):
    project = _project_copy(tmp_path)
    # the analyst's whole change: one line of SQL and its YAML entry, no Python
    _insert_before(project / "models/marts/feat_offer_daily.sql", "offers.offer_scope,", NEW_FEATURE_SQL)
    _insert_before(project / "models/marts/_marts__models.yml", "      - name: offer_scope\n", NEW_FEATURE_YAML)

    settings = use_database(server, "feature_list")
    load_generated(settings, generated_data)
    end = generated_data["impressions"]["shown_at"].max().normalize() + pd.Timedelta(days=1)
    as_of = f"{{as_of_date: {end.date().isoformat()}}}"
    build = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--profiles-dir", str(PROFILES_DIR), "--vars", as_of],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-5000:]

    manifest = DbtManifest.load(project)
    features = manifest.feature_columns()
    assert [name for name in features if name != NEW_FEATURE] == DbtManifest.load().feature_columns()
    assert NEW_FEATURE in features
    with data.connect(settings) as conn:
        for model in (TRAINING_MODEL, CANDIDATES_MODEL):
            frame = data.read_relation(conn, manifest.relation(model), [NEW_FEATURE])
            assert frame[NEW_FEATURE].notna().any(), model

    config = dataclasses.replace(TrainingConfig(), algorithms=("lgbm_binary",))
    outcome = pipeline.train_models(pipeline.StageRun(settings, "feature-list", manifest), config, ModelPolicy())
    assert outcome.status == "trained", outcome.reason
    (record,) = outcome.candidates
    assert NEW_FEATURE in record.features
    assert record.categorical_features == manifest.categorical_feature_columns()
    assert NEW_FEATURE in record.model_text  # the booster was trained on it
