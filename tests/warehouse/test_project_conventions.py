"""The dbt project keeps its conventions, its docs generate, and its sources report freshness.

Conventions: warehouse/dbt-bouncer.yml (the rules of dbt-project-evaluator, which cannot be
installed from PyPI), run on the manifest and catalog of the test build.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from psycopg import sql

from ml import data
from ml.config import WAREHOUSE_DIR, Settings, dbt_target_path
from tests.conftest import dbt, in_use, load_generated, use_database

BOUNCER_CONFIG = WAREHOUSE_DIR / "dbt-bouncer.yml"
# Every model and source: the default selector leaves the reporting models out (selectors.yml).
DOCS_SELECTION = "fqn:* source:*"


def run_bouncer(artifacts: Path, output: Path) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """dbt-bouncer on the manifest and catalog in `artifacts`; returns its result and its failures."""
    # dbt-bouncer reads the artifacts from $DBT_PROJECT_DIR/target.
    project_dir = output.parent / "bouncer-project"
    project_dir.mkdir()
    (project_dir / "target").symlink_to(artifacts, target_is_directory=True)
    result = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "dbt-bouncer"), "run", "--config-file", str(BOUNCER_CONFIG)),
            *("--output-file", str(output), "--output-only-failures"),
        ],
        cwd=WAREHOUSE_DIR,
        env={**os.environ, "DBT_PROJECT_DIR": str(project_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    failures = json.loads(output.read_text()) if output.exists() else []
    return result, failures


def describe(failures: list[dict]) -> str:
    return "\n".join(f"{f['check_run_id']}: {f['failure_message']}" for f in failures)


@pytest.fixture(scope="module")
def documented_warehouse(built_warehouse) -> subprocess.CompletedProcess[str]:
    """`dbt docs generate` on the test build, with the ml tables present (empty), the reporting
    models built on them and the off-policy models, so that the catalog has every source and model."""
    settings = in_use(built_warehouse)
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, settings.ml_schema, settings.reader_role)
    # the off-policy models are on demand, but catalogued like every model
    dbt("run", "--select", "tag:reporting", "tag:off_policy")
    return dbt("docs", "generate", "--select", DOCS_SELECTION, check=False)


def test_dbt_docs_generate_writes_the_catalog(documented_warehouse):
    assert documented_warehouse.returncode == 0, documented_warehouse.stdout[-5000:]
    manifest = json.loads((dbt_target_path() / "manifest.json").read_text())
    catalog = json.loads((dbt_target_path() / "catalog.json").read_text())
    models = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    assert models and models <= set(catalog["nodes"])
    assert set(manifest["sources"]) <= set(catalog["sources"])
    assert manifest["exposures"], "the exposures BI and the Python stages read"


def test_project_keeps_its_conventions(documented_warehouse, tmp_path):
    result, failures = run_bouncer(dbt_target_path(), tmp_path / "failures.json")
    assert result.returncode == 0, describe(failures) or (result.stdout + result.stderr)[-3000:]


def _remove_test(manifest: dict, model: str, test: str, column: str) -> None:
    [uid] = [
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "test"
        and node.get("attached_node") == f"model.offerrank.{model}"
        and (node.get("test_metadata") or {}).get("name") == test
        and node.get("column_name") == column
    ]
    del manifest["nodes"][uid]


def test_conventions_catch_violations(documented_warehouse, tmp_path):
    """The checks can fail: each planted violation is reported by the check that should catch it."""
    target = tmp_path / "target"
    target.mkdir()
    shutil.copy(dbt_target_path() / "catalog.json", target)
    manifest = json.loads((dbt_target_path() / "manifest.json").read_text())
    nodes, sources = manifest["nodes"], manifest["sources"]
    # a grain with a unique test but no not_null
    _remove_test(manifest, "stg_raw__orders", "not_null", "order_id")
    # a foreign key with no relationships test
    _remove_test(manifest, "stg_raw__impressions", "relationships", "offer_id")
    # a mart reading a source, joined to models
    nodes["model.offerrank.dim_run_date"]["depends_on"]["nodes"].append("source.offerrank.raw.orders")
    # a source table without freshness, and a dashboard on a raw table
    sources["source.offerrank.raw.impressions"]["freshness"] = None
    sources["source.offerrank.raw.impressions"]["config"]["freshness"] = None
    manifest["exposures"]["exposure.offerrank.offer_recommendations"]["depends_on"]["nodes"].append(
        "source.offerrank.raw.orders"
    )
    # a source nothing reads
    sources["source.offerrank.raw.orders_copy"] = {
        **sources["source.offerrank.raw.orders"],
        "unique_id": "source.offerrank.raw.orders_copy",
        "name": "orders_copy",
        "identifier": "orders_copy",
    }
    (target / "manifest.json").write_text(json.dumps(manifest))

    result, failures = run_bouncer(target, tmp_path / "failures.json")

    assert result.returncode != 0
    found = {(f["check_run_id"].split(":")[0], f["check_run_id"].split(":")[-1]) for f in failures}
    assert {
        ("check_model_grain_tested", "stg_raw__orders"),
        ("check_model_foreign_keys_tested", "stg_raw__impressions"),
        ("check_lineage_source_cannot_be_used", "dim_run_date"),
        ("check_model_does_not_directly_join_to_source", "dim_run_date"),
        ("check_source_freshness_computable", "raw_impressions"),
        ("check_exposure_source_parents", "offer_recommendations"),
        ("check_source_used", "raw_orders_copy"),
    } <= found, describe(failures)


# --- source freshness ------------------------------------------------------------------------------

# Every source with a freshness, and its status when its newest rows are that old
# (models/staging/*/_*__sources.yml): events warn after 2 days and error after 4, sparse
# redemptions after 4 and 8, the ml tables after 2 and 4 (the weekly-retrained registry and its
# feature importance after 8 and 15; promotions have none).
FRESH_SOURCES = [
    "raw.orders",
    "raw.order_items",
    "raw.impressions",
    "raw.redemptions",
    "raw.interaction_events",
    "ml.model_registry",
    "ml.feature_importance",
    "ml.offer_scores",
    "ml.recommendations",
    "ml.recommendation_explanations",
    "ml.eval_metrics",
    "ml.drift_reference",
    "ml.feature_drift",
    "ml.pipeline_runs",
]
WEEKLY = {"ml.model_registry": "pass", "ml.feature_importance": "pass", "ml.drift_reference": "pass"}
FRESHNESS_CASES = {
    "half a day": (pd.Timedelta(hours=12), {}),
    "three days": (pd.Timedelta(days=3), {"raw.redemptions": "pass", **WEEKLY}),
    "ten days": (pd.Timedelta(days=10), {name: "warn" for name in WEEKLY}),
}
DEFAULT_STATUS = {"half a day": "pass", "three days": "warn", "ten days": "error"}


def _aged(frames: dict, age: pd.Timedelta) -> dict:
    """The raw tables with every timestamp moved so that the latest impression is `age` old."""
    shift = pd.Timestamp.now(tz="UTC") - age - frames["impressions"]["shown_at"].max()
    moved = {}
    for name, frame in frames.items():
        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column] + shift
        moved[name] = frame
    return moved


# One row per ml table, as a run writes them: %(day)s is the run's date, %(at)s its time.
ML_ROWS = {
    "model_registry": (
        "(model_id, algorithm, trained_for_date, features, params, train_start_date, train_end_date,"
        " valid_start_date, valid_end_date, metrics, status, created_at, model_text)"
        " values ('m', 'lgbm_binary', %(day)s, '{}', '{}', %(day)s, %(day)s, %(day)s, %(day)s, '{}',"
        " 'champion', %(at)s, '')"
    ),
    "feature_importance": "values ('m', 'f', 'gain', 1.0, 1)",
    "eval_metrics": "values (%(day)s, 'm', 'valid', 'roc_auc', null, 0.5, 1, null, %(day)s, %(day)s)",
    "drift_reference": "values (%(day)s, 'f', 'numeric', 1, '{1.0}', null)",
    "feature_drift": "values (%(day)s, 'm', 'f', 'numeric', 0.1, 0.05, 1, 1, 0, 0, true, %(day)s)",
    "offer_scores": "(score_date, customer_id, offer_id, model_id, score, rank) values (%(day)s, 1, 1, 'm', 0.5, 1)",
    "recommendation_explanations": "values (%(day)s, 1, 1, 'f', 'm', 0.5, 1, '1')",
    "recommendations": (
        "(score_date, customer_id, rank, offer_id, score, model_id) values (%(day)s, 1, 1, 1, 0.5, 'm')"
    ),
    "pipeline_runs": ("(run_id, run_date, step, status, started_at) values ('r', %(day)s, 'score', 'success', %(at)s)"),
}


def _write_ml_rows(settings: Settings, written_at: pd.Timestamp) -> None:
    """The ml tables hold one row each, written by a run at `written_at`."""
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, settings.ml_schema, settings.reader_role)
        with conn.transaction():
            for table, values in ML_ROWS.items():
                relation = sql.Identifier(settings.ml_schema, table)
                conn.execute(sql.SQL("truncate {} cascade").format(relation))
                if table == "offer_scores":  # its rows go into their day's partition
                    data.ensure_day_partition(conn, settings.ml_schema, table, written_at.date())
                conn.execute(
                    sql.SQL("insert into {} {}").format(relation, sql.SQL(values)),
                    {"day": written_at.date(), "at": written_at},
                )


@pytest.fixture(scope="module")
def freshness_database(server) -> Settings:
    return use_database(server, "freshness")


@pytest.mark.parametrize("case", FRESHNESS_CASES)
def test_source_freshness_reports_every_source(case, freshness_database, generated_data, monkeypatch, tmp_path):
    age, overrides = FRESHNESS_CASES[case]
    expected = {source: overrides.get(source, DEFAULT_STATUS[case]) for source in FRESH_SOURCES}
    settings = freshness_database
    monkeypatch.setenv("PGDATABASE", settings.database.dbname)
    load_generated(settings, _aged(generated_data, age))
    _write_ml_rows(settings, pd.Timestamp.now(tz="UTC") - age)

    result = dbt("source", "freshness", "--output", str(tmp_path / "sources.json"), check=False)

    statuses = {
        r["unique_id"].split(".", 2)[2]: r["status"]
        for r in json.loads((tmp_path / "sources.json").read_text())["results"]
    }
    assert statuses == expected, result.stdout[-3000:]
    # Errors fail the command; warnings only report.
    assert result.returncode == (1 if "error" in expected.values() else 0), result.stdout[-3000:]
