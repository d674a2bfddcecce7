"""The offerrank Dagster code location: `dagster dev` at the repository root loads this.

Every job runs in one process (the in-process executor): a run holds the warehouse's run lock
from its first step to its last (orchestration/resources.py), and its steps form one chain anyway.
"""

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from orchestration.assets import (
    PYTHON_CHECKS,
    eval_metrics,
    feature_drift,
    model_registry,
    off_policy_estimates,
    off_policy_models,
    offer_scores_and_recommendations,
    recommendation_explanations,
    reporting_models,
    warehouse_models,
)
from orchestration.resources import build_resources
from orchestration.sensors import drift_retraining, drift_retraining_job

DAILY_JOB = "daily_run"

# The off-policy estimate runs on demand (`offerrank evaluate-offline`), in a job of its own: no
# daily job selects its assets or their checks.
OFF_POLICY = AssetSelection.assets(*off_policy_models.keys, off_policy_estimates)
OFF_POLICY_CHECKS = AssetSelection.checks_for_assets(off_policy_models)
OFF_POLICY_JOB = "off_policy_evaluation"
off_policy_job = define_asset_job(
    OFF_POLICY_JOB,
    selection=OFF_POLICY | OFF_POLICY_CHECKS,
    description="The off-policy estimate of the champion from the logged visits, after a daily run (on demand).",
)

daily_job = define_asset_job(
    DAILY_JOB,
    selection=(AssetSelection.all() - OFF_POLICY) | (AssetSelection.all_asset_checks() - OFF_POLICY_CHECKS),
    description="The whole daily run for one date (a partition): dbt, drift, training, evaluation, scores.",
)

# The same run, leaving the reporting marts as they are (`offerrank run --no-reporting`): all of
# warehouse_models and its checks stay selected, so dbt builds the `features` selector as a whole.
REPORTING = AssetSelection.assets(*reporting_models.keys)
DAILY_JOB_WITHOUT_REPORTING = "daily_run_without_reporting"
daily_job_without_reporting = define_asset_job(
    DAILY_JOB_WITHOUT_REPORTING,
    selection=(AssetSelection.all() - REPORTING - OFF_POLICY)
    | (AssetSelection.all_asset_checks() - AssetSelection.checks_for_assets(reporting_models) - OFF_POLICY_CHECKS),
    description="The daily run for one date without the reporting marts, e.g. for all but the last of many dates.",
)

# Each morning at 06:00 UTC, the run for that day. Off until turned on (the UI, or
# `dagster schedule start daily_run_schedule`): the demo's data ends months ago.
daily_schedule = build_schedule_from_partitioned_job(daily_job, hour_of_day=6)

defs = Definitions(
    assets=[
        warehouse_models,
        feature_drift,
        model_registry,
        eval_metrics,
        offer_scores_and_recommendations,
        recommendation_explanations,
        reporting_models,
        off_policy_models,
        off_policy_estimates,
    ],
    asset_checks=PYTHON_CHECKS,
    jobs=[daily_job, daily_job_without_reporting, drift_retraining_job, off_policy_job],
    schedules=[daily_schedule],
    sensors=[drift_retraining],
    executor=in_process_executor,
    resources=build_resources(),
)
