"""The daily graph: dbt models, then training, evaluation, scoring and recommendations.

Assets stay thin: each calls one `ml.pipeline` stage and reports what it wrote as metadata.
"""

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    multi_asset,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
    get_asset_key_for_model,
)

from ml import checks, off_policy, pipeline
from ml.config import load_model_policy, load_settings, load_training_config
from ml.data_tests import DataTestsFailed
from ml.evaluate import metric_label
from ml.features import CANDIDATES_MODEL, RUN_DATE_MODEL, TRAINING_MODEL, VISIT_CANDIDATES_MODEL, DbtManifest
from orchestration.dbt_builds import PRODUCTION_BUILD, features_build, start_build
from orchestration.project import warehouse_project
from orchestration.resources import WarehouseResource


class DbtBuildConfig(Config):
    """Run-time options of the dbt build (its date is the run's partition)."""

    full_refresh: bool = False
    """Rebuild the incremental feature marts over all history instead of the missing dates alone.

    Needed after a change to a feature's SQL or columns, or to data older than the newest built date.
    """


# One partition per run date: the day features are built as of and candidates scored for. The
# partition of today exists (end_offset=1), so the schedule runs it in the morning.
DAILY_PARTITIONS = DailyPartitionsDefinition(
    start_date=load_settings().first_date.isoformat(), end_offset=1, timezone="UTC"
)


# A backfill runs each date on its own, as the schedule does: every stage reads "the run date".
# (dagster-dbt would otherwise build a range of dates in one dbt invocation.)
ONE_DATE_PER_RUN = BackfillPolicy.multi_run(max_partitions_per_run=1)
# What every Python asset of the daily run shares.
ML_DAILY: dict[str, Any] = {"group_name": "ml", "partitions_def": DAILY_PARTITIONS, "backfill_policy": ONE_DATE_PER_RUN}


def run_stage(
    context: AssetExecutionContext | AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    built: bool = True,
    run_date: str | None = None,
) -> pipeline.StageRun:
    """The stage of this run; where the marts are `built` already, once they are checked to be
    built for the run's partition, or `run_date` (a guard against a run that rebuilt them for
    another date)."""
    stage = pipeline.StageRun(
        settings=warehouse.settings(), run_id=context.run.run_id, manifest=DbtManifest(warehouse_project.manifest_path)
    )
    partition = run_date or context.run.tags.get("dagster/partition")
    if built and partition:
        pipeline.check_run_date(stage, dt.date.fromisoformat(partition))
    return stage


def timed_metadata(started: float, counts: Mapping[str, object]) -> dict[str, object]:
    return {**counts, "seconds": round(time.perf_counter() - started, 2)}


# dbt tests on the raw sources show up as asset checks of the raw tables; the tests of every
# model, as asset checks of the model.
_DBT_SETTINGS = DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)

# The dbt selectors (warehouse/selectors.yml): the features, the default of a plain `dbt build`,
# need only the raw tables; the reporting models read the ml tables the Python assets write.
FEATURES_SELECTOR = "features"
REPORTING_SELECTOR = "reporting"


def _daily_dbt_assets(selector: str, translator: DagsterDbtTranslator):
    """The dbt models of one selector (warehouse/selectors.yml) as assets, one run date a run."""
    return dbt_assets(
        manifest=warehouse_project.manifest_path,
        project=warehouse_project,
        select="",
        selector=selector,
        dagster_dbt_translator=translator,
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=ONE_DATE_PER_RUN,
    )


@_daily_dbt_assets(FEATURES_SELECTOR, DagsterDbtTranslator(_DBT_SETTINGS))
def warehouse_models(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig
):
    """Every dbt model but the reporting ones, with its tests, built as of the partition's date."""
    # The incremental marts add the partition's date (warehouse/macros/as_of_date.sql).
    stage = run_stage(context, warehouse, built=False)
    build = features_build(
        dt.date.fromisoformat(context.partition_key),
        full_refresh=config.full_refresh,
        newest_example=pipeline.newest_training_example_date(stage),
    )
    try:
        with pipeline.recorded_dbt_build(stage) as recorded:
            invocation = start_build(dbt, build, context=context)
            recorded.target_path = invocation.target_path
            yield from invocation.stream()
    except DataTestsFailed as failed:
        # the failed rules and their sample rows, where Dagster shows why the run stopped
        raise Failure(description=str(failed)) from failed


def _model_key(model: str) -> AssetKey:
    return get_asset_key_for_model([warehouse_models], model)


RUN_DATE = _model_key(RUN_DATE_MODEL)
TRAINING_EXAMPLES = _model_key(TRAINING_MODEL)
SCORING_CANDIDATES = _model_key(CANDIDATES_MODEL)


@asset(key=["ml", "feature_drift"], deps=[SCORING_CANDIDATES, RUN_DATE], **ML_DAILY)
def feature_drift(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """How far today's candidates have drifted from those of the champion's training date (PSI and
    KS per feature, against the sample in ml.drift_reference), measured before training: the
    largest PSI of a feature in the signal (not offer-level) is the drift signal the drift sensor
    (orchestration/sensors.py) retrains on."""
    started = time.perf_counter()
    drift = pipeline.measure_drift(run_stage(context, warehouse), load_training_config())
    measured = drift.dropna(subset=["psi"]).sort_values("psi", ascending=False)
    context.log.info(
        "feature drift: "
        + (", ".join(f"{row.feature} {row.psi:.3f}" for row in measured.head(5).itertuples()) or "nothing measured")
    )
    metadata: dict[str, object] = {"features": len(drift)}
    signal = measured[measured["is_in_signal"].astype(bool)]
    if len(signal):
        top = signal.iloc[0]
        metadata.update(
            max_psi=float(top["psi"]), max_psi_feature=str(top["feature"]), reference_date=str(top["reference_date"])
        )
    return MaterializeResult(metadata=timed_metadata(started, metadata))


FEATURE_DRIFT = AssetKey(["ml", "feature_drift"])


class TrainConfig(Config):
    """Run-time options of training."""

    retrain: bool = False
    """Train new models today whatever the retraining policy says (OFFERRANK_RETRAIN_ON etc.)."""

    retrain_on_drift: bool = False
    """Retrain if the date's drift signal exceeds OFFERRANK_DRIFT_THRESHOLD: set by the drift
    sensor's runs. The daily run measures drift and leaves acting on it to the sensor."""


@multi_asset(
    specs=[
        AssetSpec(
            ["ml", "model_registry"],
            # after feature_drift: its measure of today against the champion can trigger retraining;
            # training keeps a sample of today's candidates as its drift reference (ml.drift_reference)
            deps=[FEATURE_DRIFT, TRAINING_EXAMPLES, SCORING_CANDIDATES, RUN_DATE],
            description="Every trained model with its windows, features, provenance, calibration and metrics.",
        ),
        AssetSpec(["ml", "model_promotions"], description="Every change of champion, with its reason."),
        AssetSpec(["ml", "feature_importance"], description="Gain and split importance (LightGBM) per model."),
    ],
    **ML_DAILY,
)
def model_registry(context: AssetExecutionContext, warehouse: WarehouseResource, config: TrainConfig):
    """Retrains when the policy says so (no usable champion, a retraining weekday, asked for, or
    drift in a run the drift sensor launched): fits logistic regression, LightGBM binary and
    LambdaRank, compares them with the champion on the same validation window and promotes the
    best by the margin. Training that
    fails or is skipped is logged and leaves the champion (or the heuristic) serving."""
    started = time.perf_counter()
    stage = run_stage(context, warehouse)
    drift = pipeline.drift_signal(stage)
    outcome = pipeline.train_models(
        stage,
        load_training_config(),
        load_model_policy(),
        forced=config.retrain,
        drift=drift if config.retrain_on_drift else None,
    )
    context.log.info(f"training {outcome.status}: {outcome.reason}")
    metadata = {
        "status": outcome.status,
        "drift_signal": "not measured" if drift is None else drift,
        "reason": outcome.reason,
        "champion": outcome.champion_id or "none (heuristic ranking)",
        "promoted": outcome.promoted,
        "candidates": [record.model_id for record in outcome.candidates],
    }
    metadata = timed_metadata(started, metadata)
    for spec_key in (["ml", "model_registry"], ["ml", "model_promotions"], ["ml", "feature_importance"]):
        yield MaterializeResult(asset_key=spec_key, metadata=metadata)


MODEL_REGISTRY = AssetKey(["ml", "model_registry"])


@asset(
    key=["ml", "eval_metrics"],
    deps=[MODEL_REGISTRY, TRAINING_EXAMPLES, RUN_DATE],
    **ML_DAILY,
)
def eval_metrics(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """The champion's, the heuristic's and the oracle's metrics on the run date's validation window,
    and the run's HTML report (ROC, precision-recall, gain, calibration, NDCG by model, importance,
    drift), whose path is in the metadata."""
    started = time.perf_counter()
    stage = run_stage(context, warehouse)
    metrics = pipeline.evaluate_champion(stage, load_training_config())
    # `<scorer>/<metric>`: the champion's id, 'heuristic' and 'oracle', all customers, raw order
    values = {
        f"{row.model_id}/{metric_label(row.metric, row.k)}": float(row.value)
        for row in metrics.itertuples()
        if row.value == row.value  # undefined metrics (NaN) are left out of the metadata
        and row.segment == "all"
        and row.ordering == "raw"
    }
    context.log.info("evaluated: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items()))
    if metrics.empty:  # no labelled impressions to judge yet: nothing to report
        return MaterializeResult(metadata=timed_metadata(started, values))
    report = pipeline.write_report(stage, load_model_policy())
    context.log.info(f"report: {report}")
    return MaterializeResult(metadata=timed_metadata(started, {**values, "report": MetadataValue.path(str(report))}))


OFFER_SCORES = AssetKey(["ml", "offer_scores"])
RECOMMENDATIONS = AssetKey(["ml", "recommendations"])


@multi_asset(
    specs=[
        AssetSpec(
            OFFER_SCORES,
            deps=[MODEL_REGISTRY, SCORING_CANDIDATES, RUN_DATE],
            description="Every candidate customer x offer pair of the day, scored by the champion (calibrated"
            " probability) or, with no usable model, ranked by the heuristic.",
        ),
        AssetSpec(
            RECOMMENDATIONS,
            deps=[OFFER_SCORES, SCORING_CANDIDATES, RUN_DATE],
            description="Each customer's K offers of the day: the scored offers re-ranked by MMR, at most"
            " OFFERRANK_MAX_PER_CATEGORY per category, none already redeemed.",
        ),
    ],
    **ML_DAILY,
)
def offer_scores_and_recommendations(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Scores and recommendations of the day, written in one transaction: readers never see one
    without the other, nor a part of the day."""
    started = time.perf_counter()
    counts = pipeline.score_and_recommend(run_stage(context, warehouse))
    context.log.info(f"scored {counts['candidate_pairs']:,} candidate pairs")
    context.log.info(f"wrote {counts['recommendations_written']:,} recommendations")
    scored, recommended = counts["candidate_pairs"], counts["recommendations_written"]
    yield MaterializeResult(
        asset_key=OFFER_SCORES, metadata=timed_metadata(started, {"candidate_pairs": scored, "rows_written": scored})
    )
    yield MaterializeResult(
        asset_key=RECOMMENDATIONS,
        metadata=timed_metadata(
            started,
            {"recommendations_written": recommended, "rows_written": recommended, **experiment_metadata(counts)},
        ),
    )


def experiment_metadata(counts: Mapping[str, Any]) -> dict[str, object]:
    """The experiment's side of the scored day: customers served per variant, first exposures,
    and the shadow model's overlap@k with the served lists (when there is a shadow)."""
    metadata: dict[str, object] = {
        f"customers_{variant}": n for variant, n in sorted(counts["customers_by_variant"].items())
    }
    metadata["new_assignments"] = counts["new_assignments"]
    if counts["shadow_model"] is not None:
        metadata["shadow_model"] = counts["shadow_model"]
        if counts["overlap_at_k"] is not None:
            metadata["shadow_overlap_at_k"] = float(counts["overlap_at_k"])
    return metadata


@asset(key=["ml", "recommendation_explanations"], deps=[RECOMMENDATIONS, SCORING_CANDIDATES], **ML_DAILY)
def recommendation_explanations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """The top 3 feature contributions of every recommendation."""
    started = time.perf_counter()
    counts = pipeline.explain_recommendations(run_stage(context, warehouse))
    context.log.info(f"wrote {counts['rows_written']:,} explanation rows")
    return MaterializeResult(metadata=timed_metadata(started, counts))


class _GroupTranslator(DagsterDbtTranslator):
    """Puts every model of a dbt selection in one asset group."""

    def __init__(self, group: str) -> None:
        super().__init__(_DBT_SETTINGS)
        self.group = group

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return self.group


@_daily_dbt_assets(REPORTING_SELECTOR, _GroupTranslator(REPORTING_SELECTOR))
def reporting_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """The reporting marts for BI over the ml tables (and the staging views under them), with
    their tests, once the Python assets have written those tables: dagster-dbt keys the `ml`
    sources as the Python assets are keyed (["ml", table]), so they follow them."""
    with pipeline.recorded_reporting_build(run_stage(context, warehouse)):
        yield from dbt.cli(PRODUCTION_BUILD, context=context).stream()


# --- the off-policy estimate: on demand, in its own job (orchestration/definitions.py) ---------------

OFF_POLICY_SELECTOR = "off_policy"


@_daily_dbt_assets(OFF_POLICY_SELECTOR, _GroupTranslator(OFF_POLICY_SELECTOR))
def off_policy_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """The logged visits of the off-policy window and their candidates with features as of each
    visit's day (fct_logged_visit_candidates), from the marts the partition's daily run built: not
    part of the daily run, which it would slow for an estimate nobody needs every day."""
    run_stage(context, warehouse)  # the marts it reads must be the partition's
    window = {"off_policy_window_days": warehouse.settings().off_policy.window_days}
    yield from dbt.cli([*PRODUCTION_BUILD, "--vars", json.dumps(window)], context=context).stream()


@asset(
    key=["ml", "off_policy_estimates"],
    # It reads the champion too, but a dependency on model_registry would put it in the drift
    # sensor's retraining job (everything downstream of training).
    deps=[get_asset_key_for_model([off_policy_models], VISIT_CANDIDATES_MODEL), RUN_DATE],
    **{**ML_DAILY, "group_name": OFF_POLICY_SELECTOR},
)
def off_policy_estimates(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """IPS and self-normalised IPS of the champion's redemption rate per impression on the logged
    visits, the logging policy's own rate there, and the online rate of treatment's served lists
    (docs/experiments.md, "Off-policy estimate")."""
    started = time.perf_counter()
    evaluation = off_policy.evaluate_offline(run_stage(context, warehouse))
    for note in evaluation.notes:
        context.log.info(note)
    values = {
        f"{row.estimator}": float(row.value) for row in evaluation.estimates.itertuples() if row.value == row.value
    }
    context.log.info("off-policy estimate: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items()))
    return MaterializeResult(metadata=timed_metadata(started, values))


# --- Python checks of the outputs (ml/checks.py); blocking ones stop the assets downstream -------------


def check_result(outcome: checks.CheckOutcome, severity: AssetCheckSeverity) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed, severity=severity, description=outcome.description, metadata=outcome.metadata
    )


@asset_check(asset=OFFER_SCORES, blocking=True)
def scores_cover_candidates(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    """One score row per candidate pair of the run date: none lost, none doubled."""
    return check_result(checks.scores_cover_candidates(run_stage(context, warehouse)), AssetCheckSeverity.ERROR)


@asset_check(asset=RECOMMENDATIONS, blocking=True)
def every_eligible_customer_recommended(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every customer with a candidate offer not yet redeemed has recommendations."""
    return check_result(
        checks.every_eligible_customer_recommended(run_stage(context, warehouse)), AssetCheckSeverity.ERROR
    )


@asset_check(asset=eval_metrics)
def champion_metric_holds(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    """The champion's primary metric is within OFFERRANK_METRIC_TOLERANCE of the previous run
    date's served model: a warning to look, not a reason to stop serving."""
    outcome = checks.champion_metric_holds(run_stage(context, warehouse), load_training_config(), load_model_policy())
    return check_result(outcome, AssetCheckSeverity.WARN)


PYTHON_CHECKS = [scores_cover_candidates, every_eligible_customer_recommended, champion_metric_holds]
