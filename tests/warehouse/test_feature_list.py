"""One feature list, declared in dbt: a documented, flagged column added to a feature mart becomes a model feature."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ml import data, pipeline
from ml.config import PROFILES_DIR, WAREHOUSE_DIR, ModelPolicy, TrainingConfig
from ml.features import CANDIDATES_MODEL, TRAINING_MODEL, DbtManifest
from tests.conftest import load_generated, use_database

NEW_FEATURE = "days_since_offer_start"
NEW_FEATURE_SQL = f"(running_totals.effective_date - offers.starts_on)::integer as {NEW_FEATURE},\n        "
NEW_FEATURE_YAML = f"""      - name: {NEW_FEATURE}
        description: "Days since the offer started, as of D (0 on starts_on). Unit: days."
        data_type: integer
        config: {{meta: {{feature: true}}}}
"""


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
    assert NEW_FEATURE in record.model_text  # the booster was trained on it
