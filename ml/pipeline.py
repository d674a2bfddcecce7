"""The daily stages after dbt: train, evaluate, score, recommend.

Each stage reads the dbt marts, calls the pure functions of `train`, `evaluate` and `score`, writes
its `ml` table through `data`, and logs itself to `ml.pipeline_runs`. Dagster assets call these;
nothing here imports Dagster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightgbm as lgb
import pandas as pd
import psycopg
from psycopg import sql

from ml import data
from ml.config import Settings, TrainingConfig
from ml.evaluate import metric_label, ranking_metrics
from ml.features import CANDIDATES_MODEL, RUN_DATE_MODEL, TRAINING_MODEL, DbtManifest
from ml.score import score_frame
from ml.train import predict, temporal_split, train_binary

EXAMPLE_KEYS = ["impression_id", "customer_id", "offer_id", "shown_date", "label"]
CANDIDATE_KEYS = ["as_of_date", "customer_id", "offer_id"]


@dataclass(frozen=True)
class StageRun:
    """Where a stage runs: the settings, the Dagster run it belongs to, and the dbt manifest."""

    settings: Settings
    run_id: str
    manifest: DbtManifest

    @property
    def schema(self) -> str:
        return self.settings.ml_schema


class NoChampionError(RuntimeError):
    """Scoring was asked for, but the registry holds no champion model."""


def run_date(conn: psycopg.Connection, manifest: DbtManifest) -> dt.date:
    """The as-of date dbt last built the marts for."""
    return _run_dates(conn, manifest)[0]


def _run_dates(conn: psycopg.Connection, manifest: DbtManifest) -> tuple[dt.date, dt.date]:
    """The as-of date dbt last built the marts for, and the last shown_date with a known label then."""
    row = conn.execute(
        sql.SQL("select as_of_date, last_labelled_shown_date from {}").format(manifest.relation(RUN_DATE_MODEL))
    ).fetchone()
    if row is None:
        raise LookupError(f"dbt model {RUN_DATE_MODEL} is empty: run dbt first")
    return row


def _read_examples(
    conn: psycopg.Connection,
    manifest: DbtManifest,
    features: list[str],
    shown_dates: tuple[dt.date, dt.date] = (dt.date.min, dt.date.max),
) -> pd.DataFrame:
    """The training examples shown within `shown_dates` whose label was known on the run date.

    fct_training_examples is incremental: after a replay of an earlier date it also holds the
    examples of later runs, which this run must not see.
    """
    last_labelled_shown_date = _run_dates(conn, manifest)[1]
    return data.read_relation(
        conn,
        manifest.relation(TRAINING_MODEL),
        [*EXAMPLE_KEYS, *features],
        where=sql.SQL("shown_date between %s and %s"),
        params=(shown_dates[0], min(shown_dates[1], last_labelled_shown_date)),
        order_by=["impression_id"],
    )


@contextmanager
def recorded_dbt_build(stage: StageRun) -> Iterator[None]:
    """Log the dbt build wrapped by this block, with the size of the day it built."""
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "dbt_build") as log:
            yield
            log.run_date = run_date(conn, stage.manifest)
            active_offers, candidate_pairs = conn.execute(
                sql.SQL("select count(distinct offer_id), count(*) from {} where as_of_date = %s").format(
                    stage.manifest.relation(CANDIDATES_MODEL)
                ),
                (log.run_date,),
            ).fetchone()
            log.counts.update(active_offers=active_offers, candidate_pairs=candidate_pairs)


def _model_id(algorithm: str, as_of: dt.date, model_text: str) -> str:
    # Content-addressed: re-training on the same data gives the same model and the same id.
    return f"{algorithm}_{as_of:%Y%m%d}_{hashlib.sha256(model_text.encode()).hexdigest()[:10]}"


def train_model(stage: StageRun, config: TrainingConfig) -> data.ModelRecord:
    """Train on the labelled impressions, register the model and make it champion."""
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "train", as_of) as log:
            # The binary model takes numbers only: the categorical (text) features are left to the
            # ranking model of issue 5, which encodes them as categories.
            categorical = set(stage.manifest.categorical_feature_columns(TRAINING_MODEL))
            features = [f for f in stage.manifest.feature_columns(TRAINING_MODEL) if f not in categorical]
            examples = _read_examples(conn, stage.manifest, features)
            split = temporal_split(examples, "shown_date", config.valid_days)
            booster = train_binary(split, features, config)
            valid_metrics = ranking_metrics(
                split.valid["customer_id"].to_numpy(),
                split.valid["label"].to_numpy(),
                predict(booster, split.valid, features),
                config.eval_k,
            )
            model_text = booster.model_to_string()
            record = data.ModelRecord(
                model_id=_model_id("lgbm_binary", as_of, model_text),
                algorithm="lgbm_binary",
                trained_for_date=as_of,
                features=features,
                params={
                    **config.lgbm_params,
                    "seed": config.seed,
                    "negatives_per_positive": config.negatives_per_positive,
                    "best_iteration": booster.best_iteration,
                },
                train_start_date=split.train_start_date,
                train_end_date=split.train_end_date,
                valid_start_date=split.valid_start_date,
                valid_end_date=split.valid_end_date,
                metrics={metric_label(row["metric"], row["k"]): row["value"] for row in valid_metrics},
                model_text=model_text,
            )
            with conn.transaction():
                data.register_model(conn, stage.schema, record)
                data.promote_model(conn, stage.schema, record.model_id)
            log.counts["rows_written"] = 1
    return record


ORACLE_MODEL_ID = "oracle"
EVAL_COLUMNS = ["model_id", "evaluated_model_id", "split", "metric", "k", "value", "n_rows", "n_groups"]


def evaluate_champion(stage: StageRun, config: TrainingConfig) -> pd.DataFrame:
    """Write the champion's metrics on its training and validation windows to `eval_metrics`.

    Where the simulator's ground truth covers those impressions, the oracle (ranking by the true
    redemption probability) is scored on exactly the same rows, as model `oracle` with
    `evaluated_model_id` = the champion: the best any model could do on them.
    """
    with data.connect(stage.settings) as conn:
        champion = _require_champion(conn, stage.schema)
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "evaluate", as_of) as log:
            booster = lgb.Booster(model_str=champion.model_text)
            examples = _read_examples(
                conn, stage.manifest, champion.features, (champion.train_start_date, champion.valid_end_date)
            )
            examples["model_score"] = predict(booster, examples, champion.features)
            truth = data.read_true_probabilities(conn, stage.settings.truth_schema, examples["impression_id"])
            scorers = {champion.model_id: examples["model_score"]}
            if truth is not None:
                scorers[ORACLE_MODEL_ID] = examples["impression_id"].map(truth)
            in_valid = pd.to_datetime(examples["shown_date"]).dt.date >= champion.valid_start_date
            rows = [
                {"model_id": model_id, "evaluated_model_id": champion.model_id, "split": split_name, **row}
                for model_id, scores in scorers.items()
                for split_name, rows_in_split in (("train", ~in_valid), ("valid", in_valid))
                for row in ranking_metrics(
                    examples.loc[rows_in_split, "customer_id"].to_numpy(),
                    examples.loc[rows_in_split, "label"].to_numpy(),
                    scores[rows_in_split].to_numpy(),
                    config.eval_k,
                )
            ]
            metrics = pd.DataFrame(rows, columns=EVAL_COLUMNS).astype({"k": "Int64", "n_groups": "Int64"})
            log.counts["rows_written"] = data.replace_eval_metrics(conn, stage.schema, champion.model_id, metrics)
    return metrics


def _require_champion(conn: psycopg.Connection, schema: str) -> data.ModelRecord:
    champion = data.champion_model(conn, schema)
    if champion is None:
        raise NoChampionError("the model registry has no champion: train a model first")
    return champion


def _customer_chunks(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Regroup streamed blocks (ordered by customer) so no customer is split across two chunks."""
    carry = None
    for frame in frames:
        if carry is not None:
            frame = pd.concat([carry, frame], ignore_index=True)
        if frame.empty:
            continue
        last_customer = frame["customer_id"].iloc[-1]
        is_last = (frame["customer_id"] == last_customer).to_numpy()
        carry = frame[is_last]
        if not is_last.all():
            yield frame[~is_last]
    if carry is not None and not carry.empty:
        yield carry


def score_candidates(stage: StageRun) -> dict[str, int]:
    """Score every candidate pair of the run date with the champion and replace that date's scores.

    Candidates stream in chunks of whole customers, so memory does not grow with their number;
    all chunks are written in one transaction on a second connection.
    """
    with data.connect(stage.settings) as reader, data.connect(stage.settings) as writer:
        champion = _require_champion(reader, stage.schema)
        as_of = run_date(reader, stage.manifest)
        with data.recorded_stage(writer, stage.schema, stage.run_id, "score", as_of) as log:
            booster = lgb.Booster(model_str=champion.model_text)
            relation = stage.manifest.relation(CANDIDATES_MODEL)
            query = sql.SQL("select {} from {} where as_of_date = %s order by customer_id, offer_id").format(
                sql.SQL(", ").join(map(sql.Identifier, [*CANDIDATE_KEYS, *champion.features])), relation
            )
            scored_chunks = (
                score_frame(chunk, predict(booster, chunk, champion.features), champion.model_id)
                for chunk in _customer_chunks(data.iter_copy_out(reader, query, (as_of,)))
            )
            written = data.replace_offer_scores(writer, stage.schema, as_of, scored_chunks)
            log.counts["candidate_pairs"] = written
            log.counts["rows_written"] = written
    return log.counts


def write_recommendations(stage: StageRun) -> dict[str, int]:
    """Replace the run date's recommendations with each customer's top-K scored offers."""
    with data.connect(stage.settings) as conn:
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "recommend", as_of) as log:
            written = data.replace_recommendations(conn, stage.schema, as_of, stage.settings.top_k)
            log.counts["recommendations_written"] = written
            log.counts["rows_written"] = written
    return log.counts


@dataclass(frozen=True)
class RunSummary:
    """What a run wrote, for the end of `offerrank run`."""

    run_date: dt.date | None
    stages: list[tuple[str, str, float | None]]  # step, status, seconds
    table_rows: dict[str, int]  # rows of the run date in each output table
    champion_id: str | None
    validation_metrics: dict[str, dict[str, float]]  # scorer (champion, 'oracle') -> metric -> value


def run_summary(settings: Settings, run_id: str) -> RunSummary:
    """Collect the stages of `run_id` from `pipeline_runs` and the rows it left in the output tables."""
    with data.connect(settings) as conn:
        stages = data.stage_log(conn, settings.ml_schema, run_id)
        dates = [row["run_date"] for row in stages if row["run_date"] is not None]
        as_of = dates[0] if dates else None
        champion = data.champion_model(conn, settings.ml_schema)
        return RunSummary(
            run_date=as_of,
            stages=[(row["step"], row["status"], row["seconds"]) for row in stages],
            table_rows=data.output_row_counts(conn, settings.ml_schema, as_of),
            champion_id=champion.model_id if champion else None,
            validation_metrics=data.validation_metrics(conn, settings.ml_schema, champion.model_id) if champion else {},
        )
