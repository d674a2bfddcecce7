"""The Dagster code location loads and wires the Python assets after the dbt models they read."""

import importlib.metadata
import inspect
from functools import cached_property

from dagster import AssetKey
from packaging import version

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
    assert AssetKey(["ml", "experiment_assignments"]) in upstream(reporting["fct_experiment_results"])
    # their dbt tests are asset checks, and the daily job runs them
    checks = {key.asset_key for key in defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph.asset_check_keys}
    assert reporting["fct_latest_recommendations"] in checks


def test_every_asset_is_partitioned_by_run_date_and_runs_in_one_process(dbt_manifest):
    from dagster import BackfillPolicy, DailyPartitionsDefinition

    from ml.config import load_settings
    from orchestration.assets import DAILY_PARTITIONS
    from orchestration.definitions import DAILY_JOB, defs

    graph = defs.resolve_asset_graph()
    assert isinstance(DAILY_PARTITIONS, DailyPartitionsDefinition)
    assert DAILY_PARTITIONS.start.date() == load_settings().first_date
    assert {
        graph.get(key).partitions_def for key in graph.get_all_asset_keys() if graph.get(key).is_materializable
    } == {DAILY_PARTITIONS}
    # a backfill builds each date in its own run, as the stages read one run date
    assert {
        graph.get(key).backfill_policy for key in graph.get_all_asset_keys() if graph.get(key).is_materializable
    } == {BackfillPolicy.multi_run(max_partitions_per_run=1)}
    # one process per run: the run lock is held from the first step to the last
    assert defs.resolve_job_def(DAILY_JOB).executor_def.name == "in_process"


def test_the_schedule_runs_each_days_partition_in_the_morning(dbt_manifest):
    import datetime as dt

    from dagster import build_schedule_context

    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("daily_run_schedule")
    assert schedule.cron_schedule == "0 6 * * *" and schedule.job_name == "daily_run"
    tick = dt.datetime(2026, 6, 30, 6, 0, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.partition_key == "2026-06-30"


def test_the_python_checks_guard_the_outputs_and_two_block_what_follows(dbt_manifest):
    from orchestration.assets import PYTHON_CHECKS
    from orchestration.definitions import DAILY_JOB, defs

    checks = {
        key.name: key.asset_key.path for key in defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph.asset_check_keys
    }
    assert checks["scores_cover_candidates"] == ["ml", "offer_scores"]
    assert checks["every_eligible_customer_recommended"] == ["ml", "recommendations"]
    assert checks["champion_metric_holds"] == ["ml", "eval_metrics"]
    blocking = {spec.name for check in PYTHON_CHECKS for spec in check.check_specs if spec.blocking}
    assert {"scores_cover_candidates", "every_eligible_customer_recommended"} <= blocking
    assert "champion_metric_holds" not in blocking


def test_the_drift_sensor_retrains_a_drifted_date_that_did_not_train(dbt_manifest):
    from dagster import FloatMetadataValue, RunRequest, SkipReason, TextMetadataValue

    from orchestration.definitions import defs
    from orchestration.sensors import RETRAIN_JOB, drift_retraining_request

    assert defs.resolve_sensor_def("drift_retraining").job_name == RETRAIN_JOB
    retrain = defs.resolve_job_def(RETRAIN_JOB).asset_layer.executable_asset_keys
    assert {("ml", "model_registry"), ("ml", "offer_scores"), ("ml", "recommendations")} <= {
        tuple(key.path) for key in retrain
    }
    assert not any(key.path[-1] == "fct_training_examples" for key in retrain)  # the marts stay as built

    def decide(signal: object, status: str) -> RunRequest | SkipReason:
        metadata = {"drift_signal": signal, "status": TextMetadataValue(status)}
        return drift_retraining_request(metadata, "2026-06-30", "run-1", threshold=0.25)

    request = decide(FloatMetadataValue(0.31), "skipped")
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-06-30" and request.run_key == "drift-run-1"
    assert request.run_config == {"ops": {"model_registry": {"config": {"retrain_on_drift": True}}}}
    assert isinstance(decide(FloatMetadataValue(0.31), "trained"), SkipReason)  # it trained on today's data
    assert isinstance(decide(FloatMetadataValue(0.25), "skipped"), SkipReason)  # at the threshold: no
    assert isinstance(decide(TextMetadataValue("not measured"), "skipped"), SkipReason)


def test_the_job_without_reporting_builds_all_the_features_and_checks_but_not_the_reporting_marts(dbt_manifest):
    from orchestration.assets import reporting_models, warehouse_models
    from orchestration.definitions import DAILY_JOB, DAILY_JOB_WITHOUT_REPORTING, defs

    daily, without = (defs.resolve_job_def(name).asset_layer for name in (DAILY_JOB, DAILY_JOB_WITHOUT_REPORTING))
    assert without.executable_asset_keys == daily.executable_asset_keys - reporting_models.keys
    assert warehouse_models.keys <= without.executable_asset_keys
    # every check of the features (the raw sources' tests too), so dbt builds its selector whole
    reporting_checks = {key for key in daily.asset_graph.asset_check_keys if key.asset_key in reporting_models.keys}
    assert without.asset_graph.asset_check_keys == daily.asset_graph.asset_check_keys - reporting_checks


def test_the_dbt_resource_asks_no_dbt_version_subprocess_and_opens_no_adapter(dbt_manifest, monkeypatch):
    import dagster_dbt.core.resource
    from dagster_dbt import DbtCliResource

    from orchestration.resources import build_resources

    # dagster-dbt still goes through the two methods the resource overrides
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    cli = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in cli and "self._initialize_dbt_core_adapter(" in cli

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dagster-dbt ran {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    resource = build_resources()["dbt"]
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_the_off_policy_estimate_runs_in_its_own_job_only(dbt_manifest):
    from orchestration.assets import off_policy_estimates, off_policy_models
    from orchestration.definitions import DAILY_JOB, DAILY_JOB_WITHOUT_REPORTING, OFF_POLICY_JOB, defs
    from orchestration.sensors import RETRAIN_JOB

    graph = defs.resolve_asset_graph()
    estimates = AssetKey(["ml", "off_policy_estimates"])
    candidates = next(key for key in off_policy_models.keys if key.path[-1] == "fct_logged_visit_candidates")
    assert candidates in graph.get(estimates).parent_keys
    assert {graph.get(key).group_name for key in [*off_policy_models.keys, estimates]} == {"off_policy"}
    off_policy = {*off_policy_models.keys, *off_policy_estimates.keys}
    job = defs.resolve_job_def(OFF_POLICY_JOB)
    assert set(job.asset_layer.executable_asset_keys) == off_policy
    for name in (DAILY_JOB, DAILY_JOB_WITHOUT_REPORTING, RETRAIN_JOB):
        layer = defs.resolve_job_def(name).asset_layer
        assert not set(layer.executable_asset_keys) & off_policy, name
        assert not {check.asset_key for check in layer.asset_graph.asset_check_keys} & off_policy, name
