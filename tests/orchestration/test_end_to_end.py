"""The whole daily run through Dagster on generated data: tables, grains, metrics, idempotency."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from psycopg import sql
from sklearn.metrics import ndcg_score, roc_auc_score

from ml import data
from ml.config import Settings
from ml.features import TRAINING_MODEL, DbtManifest
from orchestration import cli
from tests.conftest import load_generated, use_database

# Output table -> the columns of its grain.
GRAINS = {
    "model_registry": ["model_id"],
    "offer_scores": ["score_date", "customer_id", "offer_id"],
    "recommendations": ["score_date", "customer_id", "rank"],
    "eval_metrics": ["model_id", "evaluated_model_id", "split", "metric", "k"],
    "pipeline_runs": ["run_id", "step"],
}


def _checksums(settings: Settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every output table that a re-run must not change."""
    with data.connect(settings) as conn:
        return {
            table: conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                ).format(sql.Identifier(settings.ml_schema, table))
            ).fetchone()
            for table in GRAINS
            if table != "pipeline_runs"  # an audit log: every run adds its own rows
        }


@pytest.fixture(scope="module")
def demo_run(server: Settings, generated_world, dbt_manifest) -> dict:
    settings = use_database(server, "end_to_end")
    load_generated(settings, *generated_world)
    assert cli.main(["run"]) == 0
    first = _checksums(settings)
    assert cli.main(["run"]) == 0
    return {"settings": settings, "first": first, "second": _checksums(settings)}


def test_every_output_table_is_written_with_its_grain(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        for table, grain in GRAINS.items():
            columns = sql.SQL(", ").join(map(sql.Identifier, grain))
            relation = sql.Identifier(settings.ml_schema, table)
            rows = conn.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()[0]
            duplicates = conn.execute(
                sql.SQL("select count(*) from (select {} from {} group by {} having count(*) > 1) d").format(
                    columns, relation, columns
                )
            ).fetchone()[0]
            assert rows > 0, table
            assert duplicates == 0, table


def test_scores_cover_every_candidate_and_recommendations_are_the_top_k(demo_run):
    settings = demo_run["settings"]
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        candidates = data.read_relation(
            conn, manifest.relation("fct_scoring_candidates"), ["as_of_date", "customer_id", "offer_id"]
        )
        scores = data.read_relation(
            conn, sql.Identifier(settings.ml_schema, "offer_scores"), ["customer_id", "offer_id", "score", "rank"]
        )
        recommendations = data.read_relation(
            conn, sql.Identifier(settings.ml_schema, "recommendations"), ["customer_id", "offer_id", "rank", "score"]
        )
        champions = conn.execute(
            sql.SQL("select count(*) from {} where status = 'champion'").format(
                sql.Identifier(settings.ml_schema, "model_registry")
            )
        ).fetchone()[0]
    assert champions == 1
    assert len(scores) == len(candidates)
    expected = scores[scores["rank"] <= settings.top_k].sort_values(["customer_id", "rank"]).reset_index(drop=True)
    actual = recommendations.sort_values(["customer_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual[expected.columns], expected, check_dtype=False)
    per_customer = candidates.groupby("customer_id").size().clip(upper=settings.top_k)
    assert (recommendations.groupby("customer_id").size() == per_customer).all()


def test_reported_metrics_equal_sklearn_on_the_same_predictions(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        reported = data.read_relation(
            conn,
            sql.Identifier(settings.ml_schema, "eval_metrics"),
            ["split", "metric", "k", "value", "n_groups"],
            where=sql.SQL("model_id = %s and split = 'valid'"),
            params=(champion.model_id,),
        )
        valid = data.read_relation(
            conn,
            DbtManifest.load().relation(TRAINING_MODEL),
            ["customer_id", "label", *champion.features],
            where=sql.SQL("shown_date between %s and %s"),
            params=(champion.valid_start_date, champion.valid_end_date),
        )
    scores = lgb.Booster(model_str=champion.model_text).predict(valid[champion.features].to_numpy(dtype=float))
    labels = valid["label"].to_numpy()
    auc_row = reported[reported["metric"] == "roc_auc"]
    assert auc_row["value"].item() == pytest.approx(roc_auc_score(labels, scores), rel=1e-9)
    per_customer = [
        ndcg_score([labels[mask]], [scores[mask]], k=10) if mask.sum() > 1 else 1.0
        for customer in np.unique(valid["customer_id"])
        if labels[mask := (valid["customer_id"] == customer).to_numpy()].sum() > 0
    ]
    ndcg_row = reported[(reported["metric"] == "ndcg") & (reported["k"] == 10)]
    assert ndcg_row["value"].item() == pytest.approx(np.mean(per_customer), rel=1e-9)
    assert ndcg_row["n_groups"].item() == len(per_customer)
    # The model has learnt something real from the generated signal.
    assert auc_row["value"].item() > 0.6


def test_the_oracle_is_scored_on_the_models_rows_and_ranks_better(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        metrics = data.validation_metrics(conn, settings.ml_schema, champion.model_id)
        rows = conn.execute(
            sql.SQL("select model_id, n_rows from {} where evaluated_model_id = %s and metric = 'roc_auc'").format(
                sql.Identifier(settings.ml_schema, "eval_metrics")
            ),
            (champion.model_id,),
        ).fetchall()
    assert set(metrics) == {champion.model_id, "oracle"}
    # Exactly the same rows for both scorers, in each split.
    assert sorted(n for m, n in rows if m == "oracle") == sorted(n for m, n in rows if m == champion.model_id)
    assert metrics["oracle"]["roc_auc"] > metrics[champion.model_id]["roc_auc"]


def test_rerunning_a_date_leaves_identical_rows(demo_run):
    assert demo_run["second"] == demo_run["first"]


def test_every_stage_is_logged(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        runs = conn.execute(
            sql.SQL(
                "select run_id, array_agg(step order by started_at), bool_and(status = 'success')"
                " from {} group by run_id"
            ).format(sql.Identifier(settings.ml_schema, "pipeline_runs"))
        ).fetchall()
    assert len(runs) == 2
    for _, steps, all_succeeded in runs:
        # evaluate and score both follow train, in either order
        assert steps[:2] == ["dbt_build", "train"]
        assert sorted(steps[2:]) == ["evaluate", "recommend", "score"]
        assert steps.index("recommend") > steps.index("score")
        assert all_succeeded
