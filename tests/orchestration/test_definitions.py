"""The Dagster code location loads and wires the Python assets after the dbt models they read."""

import pytest
from dagster import AssetKey
from pydantic import ValidationError

from tests.conftest import REPORTING_MARTS


def test_definitions_load_with_the_whole_graph(dbt_manifest):
    # Imported here: dagster-dbt reads the manifest at import, and the fixture makes it.
    from orchestration.definitions import DAILY_JOB, defs

    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    ml_assets = {
        AssetKey(["ml", name])
        for name in (
            "model_registry",
            "model_promotions",
            "feature_importance",
            "eval_metrics",
            "feature_drift",
            "offer_scores",
            "recommendations",
            "recommendation_explanations",
        )
    }
    assert ml_assets <= keys
    assert any(key.path[-1] == "fct_training_examples" for key in keys)

    def upstream(name: str) -> set[str]:
        return {key.path[-1] for key in graph.get(AssetKey(["ml", name])).parent_keys}

    # drift is measured against the champion before training, and its signal can trigger it;
    # training keeps a sample of the day's candidates as its drift reference
    assert upstream("feature_drift") == {"fct_scoring_candidates", "dim_run_date"}
    assert {"feature_drift", "fct_training_examples", "fct_scoring_candidates", "dim_run_date"} <= upstream(
        "model_registry"
    )
    assert {"model_registry", "fct_scoring_candidates"} <= upstream("offer_scores")
    assert "offer_scores" in upstream("recommendations")
    # one op writes both, in one transaction: they are never materialized apart
    assert set(defs.resolve_assets_def(AssetKey(["ml", "offer_scores"])).keys) == {
        AssetKey(["ml", "offer_scores"]),
        AssetKey(["ml", "recommendations"]),
    }
    assert {"recommendations", "fct_scoring_candidates"} <= upstream("recommendation_explanations")
    assert defs.resolve_job_def(DAILY_JOB) is not None


def test_reporting_models_follow_the_ml_assets_in_their_own_group(dbt_manifest):
    from orchestration.assets import reporting_models, warehouse_models
    from orchestration.definitions import DAILY_JOB, defs

    graph = defs.resolve_asset_graph()
    reporting = {key.path[-1]: key for key in reporting_models.keys}
    assert {*REPORTING_MARTS, "stg_ml__recommendations"} <= set(reporting)
    assert not {key.path[-1] for key in warehouse_models.keys} & set(reporting)
    assert {graph.get(key).group_name for key in reporting.values()} == {"reporting"}
    # dagster-dbt keys source('ml', table) as the Python asset of that table: the lineage connects
    assert graph.get(reporting["stg_ml__recommendations"]).parent_keys == {AssetKey(["ml", "recommendations"])}

    def upstream(key: AssetKey) -> set[AssetKey]:
        parents = graph.get(key).parent_keys
        return parents.union(*(upstream(parent) for parent in parents if parent in graph.get_all_asset_keys()))

    ml_assets = {AssetKey(["ml", name]) for name in ("recommendations", "recommendation_explanations", "eval_metrics")}
    assert ml_assets <= upstream(reporting["fct_latest_recommendations"]) | upstream(
        reporting["fct_model_performance_daily"]
    )
    assert AssetKey(["ml", "recommendation_explanations"]) in upstream(reporting["fct_latest_recommendations"])
    assert AssetKey(["ml", "eval_metrics"]) in upstream(reporting["fct_model_performance_daily"])
    assert AssetKey(["ml", "feature_drift"]) in upstream(reporting["fct_feature_drift_daily"])
    # their dbt tests are asset checks, and the daily job runs them
    checks = {key.asset_key for key in defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph.asset_check_keys}
    assert reporting["fct_latest_recommendations"] in checks


def test_dbt_build_config_rejects_a_malformed_date(dbt_manifest):
    from orchestration.assets import DbtBuildConfig

    assert DbtBuildConfig(as_of_date="2026-06-30").as_of_date == "2026-06-30"
    assert DbtBuildConfig(as_of_date="").as_of_date is None
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        DbtBuildConfig(as_of_date="30/06/2026")
