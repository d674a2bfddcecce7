"""The offerrank Dagster code location: `dagster dev` at the repository root loads this."""

from dagster import AssetSelection, Definitions, define_asset_job

from orchestration.assets import (
    eval_metrics,
    feature_drift,
    model_registry,
    offer_scores_and_recommendations,
    recommendation_explanations,
    reporting_models,
    warehouse_models,
)
from orchestration.resources import build_resources

DAILY_JOB = "daily_run"

defs = Definitions(
    assets=[
        warehouse_models,
        feature_drift,
        model_registry,
        eval_metrics,
        offer_scores_and_recommendations,
        recommendation_explanations,
        reporting_models,
    ],
    jobs=[
        define_asset_job(
            DAILY_JOB,
            selection=AssetSelection.all() | AssetSelection.all_asset_checks(),
            description="The whole daily run for one date.",
        )
    ],
    resources=build_resources(),
)
