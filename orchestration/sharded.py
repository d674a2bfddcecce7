"""Scoring by customer shard: a second Dagster code location whose one asset is partitioned by
run date x shard, so that a run launcher that places runs on other machines (dagster-k8s,
dagster-celery-k8s; docs/scaling.md) can score the shards of a date in parallel.

It scores a date the daily run has built: the marts (`warehouse_models`) and the champion
(`model_registry`) of the date come from the daily location (orchestration/definitions.py), whose
assets it depends on by key. Each partition `(date, shard)` reads only its customers' candidates
(`ml.data.shard_filter`, md5 of customer_id modulo OFFERRANK_SCORING_SHARDS) and replaces only
their rows of the date, in one transaction; the union of the shards is the unsharded day. It is a
location of its own because its partitions are not the daily assets' run dates: the daily jobs,
the drift sensor's job and their tests stay as they are. Load both:

    dagster dev -m orchestration.definitions -m orchestration.sharded

Runs hold the warehouse's run lock in shared mode: shards run beside one another, never beside a
daily run, which holds it exclusively while it rebuilds the marts.
"""

import datetime as dt
import time

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DagsterRun,
    Definitions,
    MaterializeResult,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    asset_check,
    define_asset_job,
    in_process_executor,
)

from ml import checks, pipeline
from ml.config import Shard, load_settings
from orchestration.assets import (
    DAILY_PARTITIONS,
    MODEL_REGISTRY,
    RUN_DATE,
    SCORING_CANDIDATES,
    check_result,
    experiment_metadata,
    run_stage,
    timed_metadata,
)
from orchestration.resources import WarehouseResource, build_shard_resources

SHARD_COUNT = load_settings().scoring_shards
DATE, SHARD = "date", "shard"
SHARD_PARTITIONS = MultiPartitionsDefinition(
    {DATE: DAILY_PARTITIONS, SHARD: StaticPartitionsDefinition([str(index) for index in range(SHARD_COUNT)])}
)
SCORED_SHARD = AssetKey(["ml", "scored_shard"])
SHARDED_JOB = "sharded_scoring"


def _shard_stage(
    context: AssetExecutionContext | AssetCheckExecutionContext, warehouse: WarehouseResource
) -> tuple[pipeline.StageRun, Shard]:
    """The stage and the shard of this run, once the marts are checked to be built for its date."""
    date, index = _partition(context.run)
    return run_stage(context, warehouse, run_date=date), Shard(index, SHARD_COUNT)


def _partition(run: DagsterRun) -> tuple[str, int]:
    """The run's date and shard index, from the tags Dagster gives a run of one multi-partition."""
    tags = run.tags
    date, index = tags.get(f"dagster/partition/{DATE}"), tags.get(f"dagster/partition/{SHARD}")
    if date is None or index is None:
        raise ValueError(f"run {run.run_id} is not for one partition (date, shard) of {SHARDED_JOB}")
    dt.date.fromisoformat(date)
    return date, int(index)


@asset(
    key=SCORED_SHARD,
    deps=[MODEL_REGISTRY, SCORING_CANDIDATES, RUN_DATE],
    partitions_def=SHARD_PARTITIONS,
    # one (date, shard) a run: the runs are what a launcher spreads over machines
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=1),
    group_name="ml_sharded",
)
def scored_shard(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """One shard of a date's customers scored, re-ranked and written (ml.offer_scores,
    ml.recommendations, ml.shadow_recommendations and first exposures), replacing that shard's rows
    only, in one transaction; the date's shadow agreement is of every shard's stored lists."""
    started = time.perf_counter()
    stage, shard = _shard_stage(context, warehouse)
    counts = pipeline.score_and_recommend(stage, shard)
    context.log.info(
        f"{shard}: scored {counts['candidate_pairs']:,} candidate pairs,"
        f" wrote {counts['recommendations_written']:,} recommendations"
    )
    metadata = {
        "candidate_pairs": counts["candidate_pairs"],
        "recommendations_written": counts["recommendations_written"],
        "rows_written": counts["rows_written"],
        **experiment_metadata(counts),
    }
    return MaterializeResult(metadata=timed_metadata(started, metadata))


@asset_check(asset=SCORED_SHARD, blocking=True)
def shard_scores_cover_candidates(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """One score row per candidate pair of the shard's customers on the run date."""
    return check_result(checks.scores_cover_candidates(*_shard_stage(context, warehouse)), AssetCheckSeverity.ERROR)


@asset_check(asset=SCORED_SHARD, blocking=True)
def every_eligible_shard_customer_recommended(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every customer of the shard with a candidate offer not yet redeemed has recommendations."""
    return check_result(
        checks.every_eligible_customer_recommended(*_shard_stage(context, warehouse)), AssetCheckSeverity.ERROR
    )


sharded_scoring_job = define_asset_job(
    SHARDED_JOB,
    selection=[SCORED_SHARD],
    description="Score one customer shard of a date the daily run built; a backfill of a date's shards runs them"
    " side by side.",
)

defs = Definitions(
    assets=[scored_shard],
    asset_checks=[shard_scores_cover_candidates, every_eligible_shard_customer_recommended],
    jobs=[sharded_scoring_job],
    # each run is one step; parallelism is runs side by side, on whatever machines the launcher picks
    executor=in_process_executor,
    resources=build_shard_resources(),
)
