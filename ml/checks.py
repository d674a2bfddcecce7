"""The Python checks of a run's outputs, beside dbt's tests of the marts: whole scores, a list for
every customer who can have one, and a champion that has not lost its edge.

Each returns a CheckOutcome; the Dagster asset checks report them, and blocking ones stop the
assets downstream of a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from ml import data
from ml.config import ModelPolicy, Shard, TrainingConfig
from ml.features import CANDIDATES_MODEL
from ml.pipeline import StageRun, run_date


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _of(shard: Shard | None) -> str:
    return "" if shard is None else f" ({shard})"


def scores_cover_candidates(stage: StageRun, shard: Shard | None = None) -> CheckOutcome:
    """The run date's offer_scores hold exactly one row per candidate pair of fct_scoring_candidates
    (of the customers of `shard`, if given: when every shard of a date passes, the date does)."""
    with data.connect(stage.settings) as conn:
        as_of = run_date(conn, stage.manifest)
        candidates = data.date_row_count(conn, stage.manifest.relation(CANDIDATES_MODEL), "as_of_date", as_of, shard)
        scores = data.date_row_count(conn, sql.Identifier(stage.schema, "offer_scores"), "score_date", as_of, shard)
    verdict = "equal" if scores == candidates else "differ"
    return CheckOutcome(
        scores == candidates,
        f"{as_of}{_of(shard)}: {scores:,} score rows and {candidates:,} candidate pairs {verdict}",
        {"score_rows": scores, "candidate_pairs": candidates},
    )


def every_eligible_customer_recommended(stage: StageRun, shard: Shard | None = None) -> CheckOutcome:
    """Every customer with a candidate offer not yet redeemed has recommendations on the run date
    (every such customer of `shard`, if given)."""
    with data.connect(stage.settings) as conn:
        as_of = run_date(conn, stage.manifest)
        eligible, missing, sample = data.customers_without_recommendations(
            conn, stage.schema, stage.manifest.relation(CANDIDATES_MODEL), as_of, shard=shard
        )
    description = f"{as_of}{_of(shard)}: {eligible - missing:,} of {eligible:,} eligible customers have recommendations"
    if missing:
        description += f"; {missing:,} have none, e.g. customer_id {', '.join(map(str, sample))}"
    return CheckOutcome(missing == 0, description, {"eligible_customers": eligible, "without_recommendations": missing})


def champion_metric_holds(stage: StageRun, config: TrainingConfig, policy: ModelPolicy) -> CheckOutcome:
    """The champion's primary validation metric of the run date is not worse than that of the model
    that served the previous run date by more than `policy.metric_tolerance`."""
    metric, _, k = config.primary_metric.partition("@")
    with data.connect(stage.settings) as conn:
        as_of = run_date(conn, stage.manifest)
        champion = data.champion_model(conn, stage.schema)
        if champion is None:
            return CheckOutcome(True, f"{as_of}: no champion, the heuristic ranks: nothing to compare")
        value = data.validation_metrics(conn, stage.schema, as_of).get(champion.model_id, {}).get(config.primary_metric)
        previous = data.served_model_metric(conn, stage.schema, metric, int(k) if k else None, as_of)
    if value is None or value != value:
        return CheckOutcome(True, f"{as_of}: champion {champion.model_id} has no {config.primary_metric} to compare")
    if previous is None or previous[2] is None:
        return CheckOutcome(
            True,
            f"{as_of}: champion {champion.model_id} {config.primary_metric} {value:.4f};"
            " no earlier served model to compare",
            {config.primary_metric: value},
        )
    previous_date, previous_model, previous_value = previous
    drop = previous_value - value
    return CheckOutcome(
        drop <= policy.metric_tolerance,
        f"{as_of}: champion {champion.model_id} {config.primary_metric} {value:.4f} against {previous_value:.4f}"
        f" of {previous_model} on {previous_date} (a drop of {drop:+.4f}; tolerance {policy.metric_tolerance},"
        " OFFERRANK_METRIC_TOLERANCE)",
        {config.primary_metric: value, "previous_value": previous_value, "previous_model": previous_model},
    )
