"""The daily graph: dbt models, then training, evaluation, scoring and recommendations.

Assets stay thin: each calls one `ml.pipeline` stage and reports what it wrote as metadata.
"""

import datetime as dt
import json

from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, asset
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
    get_asset_key_for_model,
)
from pydantic import field_validator

from ml import pipeline
from ml.config import load_training_config
from ml.evaluate import metric_label
from ml.features import CANDIDATES_MODEL, RUN_DATE_MODEL, TRAINING_MODEL, DbtManifest
from orchestration.project import warehouse_project
from orchestration.resources import WarehouseResource


class DbtBuildConfig(Config):
    """Run-time options of the dbt build."""

    as_of_date: str | None = None
    """Build features and candidates as of this date (YYYY-MM-DD); empty: the day after the latest impression."""

    @field_validator("as_of_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"as_of_date must be a date as YYYY-MM-DD, got {value!r}") from None
        return value or None

    full_refresh: bool = False
    """Rebuild the incremental feature marts over all history instead of the missing dates alone.

    Needed after a change to a feature's SQL or columns, or to data older than the newest built date.
    """


def _stage(context: AssetExecutionContext, warehouse: WarehouseResource) -> pipeline.StageRun:
    return pipeline.StageRun(
        settings=warehouse.settings(), run_id=context.run.run_id, manifest=DbtManifest(warehouse_project.manifest_path)
    )


@dbt_assets(
    manifest=warehouse_project.manifest_path,
    project=warehouse_project,
    # dbt tests on the raw sources show up as asset checks of the raw tables.
    dagster_dbt_translator=DagsterDbtTranslator(DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)),
)
def warehouse_models(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig
):
    """Every dbt model, with its tests, built as of the configured date."""
    args = ["build", *(["--full-refresh"] if config.full_refresh else [])]
    if config.as_of_date:
        args += ["--vars", json.dumps({"as_of_date": config.as_of_date})]
    with pipeline.recorded_dbt_build(_stage(context, warehouse)):
        yield from dbt.cli(args, context=context).stream()


def _model_key(model: str) -> AssetKey:
    return get_asset_key_for_model([warehouse_models], model)


RUN_DATE = _model_key(RUN_DATE_MODEL)
TRAINING_EXAMPLES = _model_key(TRAINING_MODEL)
SCORING_CANDIDATES = _model_key(CANDIDATES_MODEL)


@asset(key=["ml", "model_registry"], deps=[TRAINING_EXAMPLES, RUN_DATE], group_name="ml")
def model_registry(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Trains a LightGBM model on the labelled impressions and promotes it to champion."""
    record = pipeline.train_model(_stage(context, warehouse), load_training_config())
    context.log.info(f"trained {record.model_id}: {record.metrics}")
    return MaterializeResult(
        metadata={
            "model_id": record.model_id,
            "train_window": f"{record.train_start_date} .. {record.train_end_date}",
            "valid_window": f"{record.valid_start_date} .. {record.valid_end_date}",
            **{f"valid_{name}": value for name, value in record.metrics.items()},
        }
    )


@asset(key=["ml", "eval_metrics"], deps=[model_registry.key, TRAINING_EXAMPLES, RUN_DATE], group_name="ml")
def eval_metrics(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """The champion's ROC AUC and NDCG@k on its training and validation windows."""
    metrics = pipeline.evaluate_champion(_stage(context, warehouse), load_training_config())
    # The champion's metrics as `valid_roc_auc`; the oracle's, on the same rows, as `oracle_valid_roc_auc`.
    values = {
        ("oracle_" if row.model_id == pipeline.ORACLE_MODEL_ID else "")
        + f"{row.split}_{metric_label(row.metric, row.k)}": float(row.value)
        for row in metrics.itertuples()
    }
    context.log.info("evaluated: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items()))
    return MaterializeResult(metadata=values)


@asset(key=["ml", "offer_scores"], deps=[model_registry.key, SCORING_CANDIDATES, RUN_DATE], group_name="ml")
def offer_scores(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """The champion's score and rank for every candidate customer x offer pair of the day."""
    counts = pipeline.score_candidates(_stage(context, warehouse))
    context.log.info(f"scored {counts['candidate_pairs']:,} candidate pairs")
    return MaterializeResult(metadata=counts)


@asset(key=["ml", "recommendations"], deps=[offer_scores.key, RUN_DATE], group_name="ml")
def recommendations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Each customer's top-K offers of the day."""
    counts = pipeline.write_recommendations(_stage(context, warehouse))
    context.log.info(f"wrote {counts['recommendations_written']:,} recommendations")
    return MaterializeResult(metadata=counts)
