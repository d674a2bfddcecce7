"""The drift sensor: it launches retraining for a run date whose features drifted past the threshold.

The daily run measures drift (the feature_drift asset) before training and records the date's
drift signal on the model_registry materialization; it trains only by the calendar policy. When
that materialization shows a signal above OFFERRANK_DRIFT_THRESHOLD and no training, the sensor
requests a run of the drift_retraining job for the same date: training (with the drift rule on)
and everything downstream of it, so the date is re-scored by the retrained champion.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset_sensor,
    define_asset_job,
)

from ml.config import load_model_policy
from orchestration.assets import MODEL_REGISTRY, model_registry

RETRAIN_JOB = "drift_retraining"

drift_retraining_job = define_asset_job(
    RETRAIN_JOB,
    selection=AssetSelection.assets(*model_registry.keys).downstream(),
    description="Retrain on drift and re-score the date: launched by the drift sensor.",
)


def _value(metadata: Mapping[str, object], name: str) -> object:
    value = metadata.get(name)
    return getattr(value, "value", value)  # MetadataValue wrappers, as read back from the event log


def drift_retraining_request(
    metadata: Mapping[str, object], partition_key: str | None, run_id: str, threshold: float
) -> RunRequest | SkipReason:
    """What the sensor does about one model_registry materialization (its metadata): a retraining
    run for its date when its drift signal exceeds `threshold` and the run did not train."""
    signal, status = _value(metadata, "drift_signal"), _value(metadata, "status")
    if not isinstance(signal, int | float):
        return SkipReason(f"run {run_id}: drift not measured")
    if signal <= threshold:
        return SkipReason(f"run {run_id}: drift {signal:.3f} within the threshold {threshold}")
    if status == "trained":
        return SkipReason(f"run {run_id}: drift {signal:.3f} above {threshold}, and the run trained already")
    return RunRequest(
        run_key=f"drift-{run_id}",  # one retraining per drifted run, however often the sensor looks
        partition_key=partition_key,
        run_config={"ops": {"model_registry": {"config": {"retrain_on_drift": True}}}},
        tags={"offerrank/trigger": f"drift {signal:.3f} > {threshold} in run {run_id}"},
    )


@asset_sensor(
    asset_key=MODEL_REGISTRY,
    job=drift_retraining_job,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def drift_retraining(context: SensorEvaluationContext, asset_event: EventLogEntry) -> RunRequest | SkipReason:
    """Retrain a run date whose drift signal exceeds OFFERRANK_DRIFT_THRESHOLD (see the module)."""
    materialization = asset_event.asset_materialization
    if materialization is None:
        return SkipReason("not a materialization")
    decision = drift_retraining_request(
        materialization.metadata, materialization.partition, asset_event.run_id, load_model_policy().drift_threshold
    )
    if isinstance(decision, SkipReason):
        context.log.info(decision.skip_message)
    return decision
