"""The daily stages after dbt: train and select, evaluate, score, recommend, explain.

Each stage reads the dbt marts, calls the pure functions of `train`, `models`, `calibrate`,
`evaluate`, `registry`, `score`, `rerank` and `explain`, writes its `ml` tables through `data`,
and logs itself to `ml.pipeline_runs`. Dagster assets call these; nothing here imports Dagster.

Training never blocks scoring: when it is skipped by the retraining policy or fails, the
champion scores the day, and with no usable champion the heuristic ranking does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from ml import data, experiment, heuristic, rerank
from ml.calibrate import Calibrator, fit_calibrator
from ml.config import (
    CHALLENGER,
    SHADOW_CHALLENGER,
    SHADOW_OFF,
    VARIANTS,
    ExperimentConfig,
    ModelPolicy,
    RerankConfig,
    Settings,
    Shard,
    TrainingConfig,
    code_version,
    dbt_target_path,
    load_training_config,
)
from ml.data_tests import DataTestsFailed, FailedTest, failed_error_tests, failure_message
from ml.drift import DRIFT_COLUMNS, feature_drift
from ml.evaluate import (
    MARGIN_IMPACT,
    EvalWindow,
    Predictions,
    metric_label,
    scorer_metrics,
    select_best,
    with_margin_lift,
)
from ml.explain import top_contributions
from ml.features import (
    CANDIDATES_MODEL,
    OFFER_FEATURES_MODEL,
    REPORTING_TAG,
    RUN_DATE_MODEL,
    TRAINING_MODEL,
    DbtManifest,
)
from ml.models import FeatureSpec, RankingModel, fit_model, load_model
from ml.registry import Decision, promotion_decision, retrain_decision
from ml.report import ReportData, ScoredWindow, render_html
from ml.score import score_frame
from ml.train import NotEnoughDataError, TemporalSplit, temporal_split

EXAMPLE_KEYS = ["impression_id", "customer_id", "offer_id", "shown_date", "label", "relevance"]
CANDIDATE_KEYS = ["as_of_date", "customer_id", "offer_id"]
ORACLE_MODEL_ID = "oracle"
EVAL_COLUMNS = [
    "model_id",
    "split",
    "segment",
    "ordering",
    "metric",
    "k",
    "value",
    "n_rows",
    "n_groups",
    "window_start_date",
    "window_end_date",
]
TOP_CONTRIBUTIONS = 3
EXPLANATION_COLUMNS = [
    "score_date", "customer_id", "offer_id", "feature", "model_id",
    "contribution", "contribution_rank", "feature_value",
]  # fmt: skip


@dataclass(frozen=True)
class StageRun:
    """Where a stage runs: the settings, the Dagster run it belongs to, and the dbt manifest."""

    settings: Settings
    run_id: str
    manifest: DbtManifest

    @property
    def schema(self) -> str:
        return self.settings.ml_schema


def run_date(conn: psycopg.Connection, manifest: DbtManifest) -> dt.date:
    """The as-of date dbt last built the marts for."""
    return _run_dates(conn, manifest)[0]


class RunDateMismatchError(RuntimeError):
    """The marts are built for another date than the run's."""


def check_run_date(stage: StageRun, expected: dt.date) -> None:
    """Raise unless dbt last built the marts for `expected`, the date the stage's run is for."""
    with data.connect(stage.settings) as conn:
        built = run_date(conn, stage.manifest)
    if built != expected:
        raise RunDateMismatchError(
            f"the marts are built as of {built}, not {expected}, the date of this run: materialize"
            f" warehouse_models for {expected} first (another run may have rebuilt them since)"
        )


def _run_dates(conn: psycopg.Connection, manifest: DbtManifest) -> tuple[dt.date, dt.date]:
    """The as-of date dbt last built the marts for, and the last shown_date with a known label then."""
    row = conn.execute(
        sql.SQL("select as_of_date, last_labelled_shown_date from {}").format(manifest.relation(RUN_DATE_MODEL))
    ).fetchone()
    if row is None:
        raise LookupError(f"dbt model {RUN_DATE_MODEL} is empty: run dbt first")
    return row


def read_examples(
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
        list(dict.fromkeys([*EXAMPLE_KEYS, *features])),
        where=sql.SQL("shown_date between %s and %s"),
        params=(shown_dates[0], min(shown_dates[1], last_labelled_shown_date)),
        order_by=["impression_id"],
    )


@dataclass
class DbtBuild:
    """The dbt build a `recorded_dbt_build` block runs: where its artifacts go."""

    target_path: Path = field(default_factory=dbt_target_path)
    """The folder of the build's run_results.json and manifest.json; dagster-dbt gives each
    invocation its own (`DbtCliInvocation.target_path`), set it before the build runs."""


@contextmanager
def recorded_dbt_build(stage: StageRun) -> Iterator[DbtBuild]:
    """Log the dbt build wrapped by this block, with the size of the day it built.

    When the build fails on data tests of error severity (a null or duplicate key in raw, an
    offer that ends before it starts...), the block raises DataTestsFailed naming each test and
    showing sample offending rows, and that message is the stage's in ml.pipeline_runs.
    """
    build = DbtBuild()
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "dbt_build") as log:
            started = time.time()
            try:
                yield build
            except Exception as err:
                failed = _failed_error_tests(build.target_path, conn, started)
                if failed:
                    raise DataTestsFailed(failure_message(failed)) from err
                raise
            log.run_date = run_date(conn, stage.manifest)
            active_offers, candidate_pairs = conn.execute(
                sql.SQL("select count(distinct offer_id), count(*) from {} where as_of_date = %s").format(
                    stage.manifest.relation(CANDIDATES_MODEL)
                ),
                (log.run_date,),
            ).fetchone()
            log.counts.update(active_offers=active_offers, candidate_pairs=candidate_pairs)


def newest_training_example_date(stage: StageRun) -> dt.date | None:
    """The newest shown date of the built training examples: a dbt build adds the dates after it
    (and the features' dates from 8 days later on). None where the marts were never built, so a
    build builds every date."""
    relation = stage.manifest.relation(TRAINING_MODEL)
    with data.connect(stage.settings) as conn:
        if not data.relation_exists(conn, relation):
            return None
        return conn.execute(sql.SQL("select max(shown_date) from {}").format(relation)).fetchone()[0]


def _failed_error_tests(target_path: Path, conn: psycopg.Connection, started: float) -> list[FailedTest]:
    """The failed error-severity tests of the build that started at `started`; none if unknown."""
    results = target_path / "run_results.json"
    # an older build's results say nothing about this one, which failed before writing its own
    if not results.exists() or results.stat().st_mtime < started:
        return []
    try:
        return failed_error_tests(target_path, conn)
    except (OSError, ValueError, KeyError):
        # unreadable or unexpected artifacts must not hide the build's own error
        return []


@contextmanager
def recorded_reporting_build(stage: StageRun) -> Iterator[None]:
    """Log the dbt build of the reporting marts wrapped by this block, with the rows they hold.

    The marts are the tables tagged `reporting` in the dbt project (warehouse/selectors.yml).
    """
    with data.connect(stage.settings) as conn:
        # materialized on its own, before any other stage created them, the log needs the ml tables
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "reporting") as log:
            yield
            log.run_date = run_date(conn, stage.manifest)
            count = sql.SQL("select count(*) from {}")
            rows = {
                mart: conn.execute(count.format(stage.manifest.relation(mart))).fetchone()[0]
                for mart in stage.manifest.tables_tagged(REPORTING_TAG)
            }
            log.counts["rows_written"] = sum(rows.values())
            log.message = ", ".join(f"{mart} {n:,} rows" for mart, n in rows.items())


# --- models as the registry holds them ------------------------------------------------------------


@dataclass(frozen=True)
class Scorer:
    """A registered model ready to score: its ranker and the calibration of its raw scores."""

    record: data.ModelRecord
    model: RankingModel
    calibrator: Calibrator

    @classmethod
    def from_record(cls, record: data.ModelRecord) -> Scorer:
        features = FeatureSpec(tuple(record.features), tuple(record.categorical_features or ()))
        calibrator = (
            Calibrator.from_dict(record.calibration)
            if record.calibration is not None
            # Registered before calibration existed: a binary model's raw score is its log-odds.
            else Calibrator.identity_platt()
        )
        return cls(record, load_model(record.algorithm, record.model_text, features), calibrator)

    @property
    def model_id(self) -> str:
        return self.record.model_id


@dataclass(frozen=True)
class Champion:
    """The champion as today's run sees it: the scorer, or why there is none."""

    scorer: Scorer | None
    model_id: str | None
    problem: str | None  # why the champion cannot score today (None: it can, or there is none)


def load_champion(conn: psycopg.Connection, stage: StageRun) -> Champion:
    """Load the champion and check it can score today's candidates (its features still exist)."""
    record = data.champion_model(conn, stage.schema)
    if record is None:
        return Champion(None, None, None)
    scorer, problem = _loaded(stage, record)
    return Champion(scorer, record.model_id, problem)


def _loaded(stage: StageRun, record: data.ModelRecord) -> tuple[Scorer | None, str | None]:
    """A registered model ready to score today's candidates, or None and why it cannot."""
    # The feature list is declared once; fct_training_examples and fct_scoring_candidates both select it.
    available = set(stage.manifest.feature_columns(TRAINING_MODEL))
    missing = [name for name in record.features if name not in available]
    if missing:
        return None, f"features no longer in the marts: {missing}"
    try:
        return Scorer.from_record(record), None
    except Exception as err:  # a model text this version cannot read is a reason to retrain, not to stop
        return None, f"cannot load its model: {type(err).__name__}: {err}"


def _model_id(algorithm: str, as_of: dt.date, model_text: str) -> str:
    # Content-addressed: re-training on the same data gives the same model and the same id.
    return f"{algorithm}_{as_of:%Y%m%d}_{hashlib.sha256(model_text.encode()).hexdigest()[:10]}"


# --- feature drift ------------------------------------------------------------------------------------

FEATURE_DRIFT_COLUMNS = [*DRIFT_COLUMNS, "is_in_signal", "model_id", "reference_date"]
# The drift samples of the candidates, on the training date and today: the same rule on both sides.
CANDIDATE_SAMPLE_KEYS = ["customer_id", "offer_id"]


def measure_drift(stage: StageRun, config: TrainingConfig) -> pd.DataFrame:
    """Measure how far today's scoring candidates have drifted from those of the champion's
    training date, feature by feature (`ml.drift`), and replace the run date's `feature_drift` rows.

    The reference is the sample of fct_scoring_candidates that training stored for its run date
    (`drift_reference`), the current population the same sample of today's: at most
    `config.drift_sample_rows` pairs, chosen by md5 of customer_id|offer_id. Both sides are every
    eligible pair of one day, so they differ only by what changed in between. With no champion, or
    a champion trained before references were kept, there is nothing to compare and the date has no
    rows. A failure is logged and returns an empty frame: drift must not stop training and scoring.
    """
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "drift", as_of) as log:
            try:
                drift, log.message = _champion_drift(conn, stage, config, as_of)
            except Exception as err:  # the policy then decides without a drift signal
                log.failed, log.message = True, f"{type(err).__name__}: {err}"[:2000]
                return pd.DataFrame(columns=FEATURE_DRIFT_COLUMNS)
            # also when empty: a re-run of the date must not leave an earlier champion's rows
            log.counts["rows_written"] = data.replace_feature_drift(conn, stage.schema, as_of, drift)
    return drift


def _champion_drift(
    conn: psycopg.Connection, stage: StageRun, config: TrainingConfig, as_of: dt.date
) -> tuple[pd.DataFrame, str]:
    """The run date's drift rows against the champion's reference, and the stage's message."""
    empty = pd.DataFrame(columns=FEATURE_DRIFT_COLUMNS)
    record = data.champion_model(conn, stage.schema)
    if record is None:
        return empty, "no champion: nothing to compare"
    reference_date = record.trained_for_date
    reference = data.read_drift_reference(conn, stage.schema, reference_date, record.features)
    if reference is None:
        return empty, (
            f"no reference sample for {reference_date}, the training date of champion {record.model_id}"
            " (trained before drift references were kept): nothing to compare until it is retrained"
        )
    # A feature gone from the marts cannot be compared (and makes the policy retrain anyway).
    available = set(stage.manifest.feature_columns(TRAINING_MODEL))
    features = [name for name in record.features if name in available and name in reference.columns]
    current = data.read_relation(
        conn,
        stage.manifest.relation(CANDIDATES_MODEL),
        list(dict.fromkeys([*CANDIDATE_SAMPLE_KEYS, *features])),
        where=sql.SQL("as_of_date = %s"),
        params=(as_of,),
        sample=(CANDIDATE_SAMPLE_KEYS, config.drift_sample_rows),
    )
    drift = feature_drift(reference, current, features, list(record.categorical_features or ()))
    # Offer-level features describe the day's catalogue, a handful of offers that start, end and
    # age by design: recorded, but left out of the signal (docs/models.md, "Feature drift").
    catalogue = set(stage.manifest.mart_feature_columns(OFFER_FEATURES_MODEL))
    drift = drift.assign(
        is_in_signal=~drift["feature"].isin(catalogue), model_id=record.model_id, reference_date=reference_date
    )[FEATURE_DRIFT_COLUMNS]
    return drift, _drift_message(drift)


def _drift_message(drift: pd.DataFrame) -> str:
    measured = drift.dropna(subset=["psi"])
    model_id, reference_date = drift["model_id"].iloc[0], drift["reference_date"].iloc[0]
    signal = measured[measured["is_in_signal"]]
    if signal.empty:
        return f"no drift measurable against champion {model_id} (an empty sample, or only offer-level features)"
    top = signal.loc[signal["psi"].idxmax()]
    ks = "" if pd.isna(top["ks"]) else f", KS {top['ks']:.3f}"
    catalogue = measured[~measured["is_in_signal"]]
    offers = "" if catalogue.empty else f"; offer-level, not in the signal: up to PSI {catalogue['psi'].max():.3f}"
    return (
        f"largest drift {top['feature']}: PSI {top['psi']:.3f}{ks} ({len(signal)} features in the signal,"
        f" {top['n_current']:,} candidates against {top['n_reference']:,} of {reference_date},"
        f" the training date of champion {model_id}{offers})"
    )


def drift_signal(stage: StageRun) -> float | None:
    """The run date's drift signal for the retraining policy: the largest PSI of a feature in the
    signal (None: unmeasured)."""
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        return data.drift_signal(conn, stage.schema, run_date(conn, stage.manifest))


# --- training, selection and promotion ------------------------------------------------------------


@dataclass(frozen=True)
class TrainingOutcome:
    """What the training stage did and why; it never raises for a failed or skipped training."""

    status: str  # 'trained', 'skipped' or 'failed'
    reason: str
    candidates: list[data.ModelRecord]
    champion_id: str | None  # after the stage
    promoted: bool


def train_models(
    stage: StageRun,
    config: TrainingConfig,
    policy: ModelPolicy,
    *,
    forced: bool = False,
    drift: float | None = None,
) -> TrainingOutcome:
    """Retrain if the policy says so: fit every configured algorithm, calibrate, compare them, the
    champion, the heuristic and the oracle on one validation window, register all candidates and
    promote the best one if it beats the champion by the margin.

    `drift` is the hook for the drift signal (the day's largest feature drift): above the policy's
    threshold it triggers retraining.
    """
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "train", as_of) as log:
            champion = load_champion(conn, stage)
            decision = retrain_decision(
                policy,
                as_of,
                champion_id=champion.model_id,
                champion_usable=champion.scorer is not None,
                forced=forced,
                drift=drift,
            )
            if not decision.yes:
                log.message = f"skipped: {decision.reason}"
                return TrainingOutcome("skipped", decision.reason, [], champion.model_id, False)
            try:
                outcome = _train_and_select(conn, stage, config, policy, as_of, champion, decision)
            except NotEnoughDataError as err:
                log.message = f"skipped: {err}"
                return TrainingOutcome("skipped", str(err), [], champion.model_id, False)
            except Exception as err:  # training must not stop the day's scoring: the champion stays
                log.failed, log.message = True, f"{type(err).__name__}: {err}"[:2000]
                return TrainingOutcome("failed", log.message, [], champion.model_id, False)
            log.message = outcome.reason
            log.counts["rows_written"] = len(outcome.candidates)
    return outcome


def _train_and_select(
    conn: psycopg.Connection,
    stage: StageRun,
    config: TrainingConfig,
    policy: ModelPolicy,
    as_of: dt.date,
    champion: Champion,
    decision: Decision,
) -> TrainingOutcome:
    features = FeatureSpec(
        tuple(stage.manifest.feature_columns(TRAINING_MODEL)),
        tuple(stage.manifest.categorical_feature_columns(TRAINING_MODEL)),
    )
    examples = read_examples(conn, stage.manifest, list(features.names))
    split = temporal_split(examples, "shown_date", config.valid_days, config.tune_days)
    provenance = {"manifest_hash": stage.manifest.content_hash(), "code_version": code_version()}
    fitted: list[tuple[str, str, RankingModel, Calibrator]] = []
    predictions: dict[str, Predictions] = {}
    for algorithm in config.algorithms:
        model = fit_model(algorithm, split, features, config)
        calibrator = fit_calibration(model, split, config)
        text = model.to_text()
        model_id = _model_id(algorithm, as_of, text)
        fitted.append((model_id, text, model, calibrator))
        predictions[model_id] = model_predictions(model, calibrator, split.valid)
    if champion.scorer is not None and champion.model_id not in predictions:
        predictions[champion.model_id] = model_predictions(
            champion.scorer.model, champion.scorer.calibrator, split.valid
        )
    predictions.update(reference_predictions(conn, stage.settings, split.valid))
    results = evaluate_window(split.valid, predictions, config, stage.settings.rerank)
    candidates = [
        (
            data.ModelRecord(
                model_id=model_id,
                algorithm=model.algorithm,
                trained_for_date=as_of,
                features=list(features.names),
                categorical_features=list(features.categorical),
                params={**model.params, "seed": config.seed, "negatives_per_positive": config.negatives_per_positive},
                train_start_date=split.train_start_date,
                train_end_date=split.train_end_date,
                tune_start_date=split.tune_start_date,
                tune_end_date=split.tune_end_date,
                valid_start_date=split.valid_start_date,
                valid_end_date=split.valid_end_date,
                metrics=headline_metrics(results[model_id]),
                calibration=calibrator.to_dict(),
                model_text=text,
                **provenance,
            ),
            model,
        )
        for model_id, text, model, calibrator in fitted
    ]

    primary = config.primary_metric
    best_id = select_best(
        {record.model_id: record.metrics for record, _ in candidates}, primary, config.tiebreak_metric
    )
    champion_value = headline_metrics(results[champion.model_id])[primary] if champion.scorer is not None else None
    promotion = promotion_decision(policy, primary, headline_metrics(results[best_id])[primary], champion_value)
    window = (split.valid_start_date, split.valid_end_date)
    # The registry, its metrics, the promotion and the drift reference land together or not at all:
    # every model trained for a date has that date's candidates to measure drift against.
    with conn.transaction():
        for record, model in candidates:
            data.register_model(conn, stage.schema, record)
            data.replace_feature_importance(conn, stage.schema, record.model_id, _importance_rows(record, model))
        data.replace_eval_metrics(conn, stage.schema, as_of, _eval_frame(results, window))
        store_drift_reference(conn, stage, config, as_of, features)
        promoted = promotion.yes and data.promote_model(
            conn, stage.schema, best_id, action="promote", reason=promotion.reason, run_date=as_of
        )
    reason = (
        f"trained because {decision.reason}: {len(candidates)} candidates, best {best_id}; "
        f"{'promoted' if promoted else 'not promoted'}: {promotion.reason}"
    )
    return TrainingOutcome(
        "trained", reason, [record for record, _ in candidates], best_id if promoted else champion.model_id, promoted
    )


def store_drift_reference(
    conn: psycopg.Connection, stage: StageRun, config: TrainingConfig, as_of: dt.date, features: FeatureSpec
) -> int:
    """Keep a sample of the run date's scoring candidates as the drift reference of the models
    trained for it (`data.replace_drift_reference`); returns the features stored."""
    return data.replace_drift_reference(
        conn,
        stage.schema,
        stage.manifest.relation(CANDIDATES_MODEL),
        as_of,
        features.names,
        features.categorical,
        (CANDIDATE_SAMPLE_KEYS, config.drift_sample_rows),
    )


def headline_metrics(rows: list[dict[str, object]]) -> dict[str, float]:
    """The headline metrics by label: segment 'all', raw order, which selection and promotion compare."""
    return {
        metric_label(row["metric"], row["k"]): row["value"]
        for row in rows
        if row["segment"] == "all" and row["ordering"] == "raw"
    }


def calibrated_scores(
    model: RankingModel, calibrator: Calibrator, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """A model's raw scores of the rows of `frame` (ranks follow them) and their calibrated probabilities."""
    raw = model.raw_scores(frame)
    return raw, calibrator.predict(raw)


def model_predictions(model: RankingModel, calibrator: Calibrator, frame: pd.DataFrame) -> Predictions:
    """A model's predictions of the rows of `frame`; re-ranking weighs its probabilities, as serving does."""
    raw, probabilities = calibrated_scores(model, calibrator, frame)
    return Predictions(raw, probabilities, serving_scores=probabilities)


def fit_calibration(model: RankingModel, split: TemporalSplit, config: TrainingConfig) -> Calibrator:
    """The calibrator of a trained model's raw scores, fitted on the tune window."""
    return fit_calibrator(config.calibration, model.raw_scores(split.tune), split.tune["label"].to_numpy())


def reference_predictions(
    conn: psycopg.Connection, settings: Settings, examples: pd.DataFrame
) -> dict[str, Predictions]:
    """The yardsticks on the same examples: the heuristic ranking (what serving would fall back
    to) and, where the simulator's ground truth covers them, the oracle (the best possible).
    Re-ranking weighs what ml.offer_scores.score would hold: the heuristic's rate x depth, the true probability."""
    prior = _window_prior_rate(examples)
    references = {
        heuristic.HEURISTIC_ID: Predictions(
            heuristic.raw_scores(examples, prior), None, serving_scores=heuristic.scores(examples, prior)
        )
    }
    oracle = _oracle_probabilities(conn, settings, examples)
    if oracle is not None:
        references[ORACLE_MODEL_ID] = Predictions(oracle, oracle, serving_scores=oracle)
    return references


def evaluate_window(
    examples: pd.DataFrame, predictions: dict[str, Predictions], config: TrainingConfig, options: RerankConfig
) -> dict[str, list[dict[str, object]]]:
    """Every scorer's metric rows on the same labelled examples: per segment (`segment_columns`),
    raw and served order, with the margin lift over the heuristic."""
    window = EvalWindow.from_examples(examples, config.segment_columns)
    # Scorers are judged independently on the shared, read-only window, and the metrics' numpy
    # sorts and reductions release the GIL: judged side by side, they take about half as long.
    with ThreadPoolExecutor(max_workers=config.evaluation_threads) as pool:
        futures = {
            name: pool.submit(scorer_metrics, window, scored, config.eval_k, options)
            for name, scored in predictions.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    return with_margin_lift(results, heuristic.HEURISTIC_ID)


def evaluation_columns(manifest: DbtManifest, config: TrainingConfig) -> list[str]:
    """The columns of the training examples the metrics need besides the scorers' features: the
    re-ranker's attributes, the margin and the segment columns, those the mart has."""
    available = set(manifest.feature_columns(TRAINING_MODEL))
    wanted = [*rerank.SIMILARITY_ATTRIBUTES, MARGIN_IMPACT, *config.segment_columns]
    return [name for name in wanted if name in available]


def _window_prior_rate(examples: pd.DataFrame) -> float:
    """The heuristic's rate for offers never shown, on labelled examples: their mean rate."""
    return float(examples[heuristic.RATE].mean()) if examples[heuristic.RATE].notna().any() else 0.0


def _oracle_probabilities(conn: psycopg.Connection, settings: Settings, examples: pd.DataFrame) -> np.ndarray | None:
    """The simulator's true redemption probability of each example, where its truth covers them all."""
    truth = data.read_true_probabilities(conn, settings.truth_schema, examples["impression_id"])
    return None if truth is None else examples["impression_id"].map(truth).to_numpy()


def _eval_frame(results: dict[str, list[dict[str, object]]], window: tuple[dt.date, dt.date]) -> pd.DataFrame:
    rows = [
        {"model_id": model_id, "split": "valid", **row, "window_start_date": window[0], "window_end_date": window[1]}
        for model_id, metric_rows in results.items()
        for row in metric_rows
    ]
    return pd.DataFrame(rows, columns=EVAL_COLUMNS).astype({"k": "Int64", "n_groups": "Int64"})


def _importance_rows(record: data.ModelRecord, model: RankingModel) -> pd.DataFrame:
    importance = model.feature_importance().sort_values(
        ["importance_type", "importance", "feature"], ascending=[True, False, True]
    )
    ranks = importance.groupby("importance_type").cumcount() + 1
    return importance.assign(model_id=record.model_id, importance_rank=ranks)[
        ["model_id", "feature", "importance_type", "importance", "importance_rank"]
    ]


# --- evaluation of the serving model ----------------------------------------------------------------


def evaluate_champion(stage: StageRun, config: TrainingConfig) -> pd.DataFrame:
    """Write the metrics of the champion, the heuristic and the oracle on the run date's
    validation window (the last `valid_days` labelled impression dates) to `eval_metrics`.

    Dates the champion was fitted on (up to its tune window's end) are left out, so a replay of
    an earlier date never scores a model on its own training data.
    """
    with data.connect(stage.settings) as conn:
        data.ensure_ml_tables(conn, stage.schema, stage.settings.reader_role)
        as_of, last_labelled = _run_dates(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "evaluate", as_of) as log:
            champion = load_champion(conn, stage)
            start = last_labelled - dt.timedelta(days=config.valid_days - 1)
            features = [*heuristic.FEATURES, *evaluation_columns(stage.manifest, config)]
            if champion.scorer is not None:
                record = champion.scorer.record
                start = max(start, (record.tune_end_date or record.valid_end_date) + dt.timedelta(days=1))
                features = [*record.features, *features]
            examples = read_examples(conn, stage.manifest, list(dict.fromkeys(features)), (start, last_labelled))
            if examples.empty:
                log.message = f"no labelled impressions from {start} to {last_labelled} the champion was not fitted on"
                return pd.DataFrame(columns=EVAL_COLUMNS)
            predictions = {}
            if champion.scorer is not None:
                scorer = champion.scorer
                predictions[champion.model_id] = model_predictions(scorer.model, scorer.calibrator, examples)
            predictions.update(reference_predictions(conn, stage.settings, examples))
            results = evaluate_window(examples, predictions, config, stage.settings.rerank)
            metrics = _eval_frame(results, (start, last_labelled))
            log.counts["rows_written"] = data.replace_eval_metrics(conn, stage.schema, as_of, metrics)
    return metrics


# --- scoring, recommendations and their explanations ------------------------------------------------


def customer_chunks(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
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


def _prior_rate(conn: psycopg.Connection, stage: StageRun, as_of: dt.date) -> float:
    """The heuristic's rate for offers never shown: the mean rate of the day's candidates."""
    (prior,) = conn.execute(
        sql.SQL("select coalesce(avg({}), 0) from {} where as_of_date = %s").format(
            sql.Identifier(heuristic.RATE), stage.manifest.relation(CANDIDATES_MODEL)
        ),
        (as_of,),
    ).fetchone()
    return float(prior)


def candidate_query(stage: StageRun, columns: list[str], shard: Shard | None = None) -> sql.Composed:
    """The scoring stage's query of the run date's candidates (its one parameter): their keys and
    `columns` (of `shard`'s customers, if given), ordered by customer so that streamed blocks can be
    cut between customers."""
    return sql.SQL("select {} from {} where as_of_date = %s{} order by customer_id, offer_id").format(
        sql.SQL(", ").join(map(sql.Identifier, dict.fromkeys([*CANDIDATE_KEYS, *columns]))),
        stage.manifest.relation(CANDIDATES_MODEL),
        data.and_in_shard(shard),
    )


def scoring_columns(conn: psycopg.Connection, stage: StageRun, as_of: dt.date) -> list[str]:
    """The candidate columns the scoring stage of `as_of` reads: its rankers' features and the re-ranker's."""
    return [*_day_serving(conn, stage, as_of).columns, *candidate_rerank_columns(stage)]


def candidate_frames(
    conn: psycopg.Connection, stage: StageRun, as_of: dt.date, columns: list[str], shard: Shard | None = None
) -> Iterator[pd.DataFrame]:
    """The run date's candidates with `columns` (of `shard`'s customers, if given), streamed in
    blocks as the scoring stage reads them."""
    return data.iter_copy_out(conn, candidate_query(stage, columns, shard), (as_of,))


def score_and_recommend(stage: StageRun, shard: Shard | None = None) -> dict[str, object]:
    """Score every candidate pair of the run date, re-rank each customer's scored offers into the
    day's recommendations, and replace the date's scores and recommendations in one transaction.

    Each customer is served by the ranker of their experiment variant (ml/experiment.py,
    OFFERRANK_EXPERIMENT...): `treatment` by the champion when it can score, otherwise the
    heuristic, whose rows say so (`ranked_by = 'heuristic'`); `control` by the heuristic; `canary`
    by the challenger. By default everyone is in treatment. A shadow model, when configured,
    ranks the same candidates into `shadow_recommendations`, never served, and its agreement with
    the served lists goes to `shadow_agreement`. Recommendations are each customer's scored offers
    re-ranked by MMR under the business rules (ml/rerank.py), `top_k` at most; only the day's
    candidates (offers active on the run date) are eligible. Candidates are read once and stream in
    chunks of whole customers, so memory does not grow with their number: each chunk is scored,
    re-ranked and written on a second connection, inside the one transaction of
    `data.replace_scored_day`, with the customers' first exposures to the experiment. Readers see
    the previous day of every table or the new one, never a part; a failure or a killed process
    leaves the previous day whole.

    With a `shard`, only that shard's customers (`data.shard_filter`) are read, scored and replaced,
    with the same rankers, the same heuristic prior (the whole date's) and so the same rows as in
    the unsharded run; the date's `shadow_agreement` is computed from every shard's stored lists by
    the last shard to commit (`data.replace_scored_day`), and the counts returned are the shard's.

    Returns the stage's counts, the day's new assignments, customers per variant and the shadow's
    agreement (`overlap_at_k` over all customers, of the shard's customers with a shard; None
    without a shadow).
    """
    options, config = stage.settings.rerank, stage.settings.experiment
    with data.connect(stage.settings) as reader, data.connect(stage.settings) as writer:
        data.ensure_ml_tables(writer, stage.schema, stage.settings.reader_role)
        as_of = run_date(reader, stage.manifest)
        with data.recorded_stage(writer, stage.schema, stage.run_id, "score", as_of) as log:
            serving = _day_serving(reader, stage, as_of)
            # before any scoring: a changed split must stop the day, not mix variants
            experiment.check_stored(data.experiment_assignments(reader, stage.schema, config.experiment_id), config)
            rerank_columns = candidate_rerank_columns(stage)
            tally = _ServingTally()

            def served(chunk: pd.DataFrame) -> data.ServedChunk:
                variant = experiment.customer_variants(chunk["customer_id"], config)
                parts = [
                    ranked_lists(chunk[variant == name], ranker, stage, rerank_columns, variant=name)
                    for name, ranker in serving.variants.items()
                    if (variant == name).any()
                ]
                scores = pd.concat([part[0] for part in parts], ignore_index=True)
                recommendations = pd.concat([part[1] for part in parts], ignore_index=True)
                exposed = recommendations.drop_duplicates("customer_id")
                tally.add_served(exposed["variant"])
                shadow = None
                if serving.shadow is not None:
                    shadow = ranked_lists(chunk, serving.shadow, stage, rerank_columns)[1]
                    overlap = experiment.overlap_at_k(recommendations, shadow)
                    tally.add_overlap(overlap, exposed.set_index("customer_id")["variant"])
                return data.ServedChunk(
                    scores,
                    recommendations,
                    experiment.assignments(exposed["customer_id"], exposed["variant"], config, as_of),
                    shadow,
                )

            def agreement() -> pd.DataFrame | None:
                if serving.shadow is None:
                    return None
                # a shard's lists are a part of the date's: the agreement is of every shard's stored lists
                overlaps = tally.overlaps if shard is None else stored_overlaps(writer, stage.schema, as_of)
                return experiment.agreement_rows(as_of, overlaps, serving.shadow.model_id, stage.settings.top_k)

            columns = [*serving.columns, *rerank_columns]
            chunks = customer_chunks(candidate_frames(reader, stage, as_of, columns, shard))
            day = data.replace_scored_day(writer, stage.schema, as_of, map(served, chunks), agreement, shard)
            overlap = tally.overall_overlap() if serving.shadow is not None else None
            log.message = "; ".join(
                [
                    *([f"{shard} (customers by md5 of customer_id)"] if shard is not None else []),
                    serving.variants["treatment"].description
                    + f"; MMR lambda {options.mmr_lambda}, at most {options.max_per_category} per category,"
                    f" top {stage.settings.top_k}",
                    _experiment_message(config, tally.customers, day.new_assignments),
                    *serving.notes,
                    *([f"shadow {serving.shadow.model_id}: overlap@{stage.settings.top_k} {overlap:.4f}"]
                      if serving.shadow is not None and overlap is not None else []),
                ]
            )  # fmt: skip
            log.counts.update(
                candidate_pairs=day.scores,
                recommendations_written=day.recommendations,
                rows_written=day.scores + day.recommendations + day.new_assignments + day.shadow_recommendations,
            )
    return {
        **log.counts,
        "new_assignments": day.new_assignments,
        "customers_by_variant": dict(tally.customers),
        "shadow_model": serving.shadow.model_id if serving.shadow is not None else None,
        "overlap_at_k": overlap,
    }


def stored_overlaps(conn: psycopg.Connection, schema: str, score_date: dt.date) -> dict[str, tuple[float, int]]:
    """The shadow's overlap with the served lists of a date as stored (every shard's), per variant:
    (sum of the customers' overlap@k, customers), as `_ServingTally` sums them while serving."""
    served = data.date_rows(conn, schema, "recommendations", "score_date", score_date)
    shadow = data.date_rows(conn, schema, "shadow_recommendations", "score_date", score_date)
    tally = _ServingTally()
    if not served.empty:
        overlap = experiment.overlap_at_k(served, shadow)
        tally.add_overlap(overlap, served.drop_duplicates("customer_id").set_index("customer_id")["variant"])
    return tally.overlaps


@dataclass
class _ServingTally:
    """What the streamed chunks served: customers per variant, and the sum of the shadow's overlap
    with their lists per variant with its count."""

    customers: dict[str, int] = field(default_factory=dict)
    overlaps: dict[str, tuple[float, int]] = field(default_factory=dict)

    def add_served(self, variants: pd.Series) -> None:
        for name, n in variants.value_counts().items():
            self.customers[name] = self.customers.get(name, 0) + int(n)

    def add_overlap(self, overlap: pd.Series, variant_of: pd.Series) -> None:
        grouped = overlap.groupby(variant_of.reindex(overlap.index).to_numpy()).agg(["sum", "count"])
        for name, row in grouped.iterrows():
            total, n = self.overlaps.get(name, (0.0, 0))
            self.overlaps[name] = (total + float(row["sum"]), n + int(row["count"]))

    def overall_overlap(self) -> float | None:
        n = sum(count for _, count in self.overlaps.values())
        return sum(total for total, _ in self.overlaps.values()) / n if n else None


def _experiment_message(config: ExperimentConfig, customers: dict[str, int], new: int) -> str:
    served = ", ".join(f"{name} {customers[name]:,}" for name in VARIANTS if name in customers) or "nobody"
    return (
        f"experiment {config.experiment_id!r} (treatment {config.treatment_share:g}, canary"
        f" {config.canary_share:g}): customers served {served}, {new:,} first exposed"
    )


def ranked_lists(
    candidates: pd.DataFrame, ranker: DayScorer, stage: StageRun, rerank_columns: list[str], variant: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ranker's `offer_scores` rows of `candidates` and the recommendations they re-rank into
    (both tagged with `variant`, when given)."""
    options = stage.settings.rerank
    scores = ranker.score(candidates)
    if variant is not None:
        scores = scores.assign(variant=variant)
    ranked = scores.rename(columns={"rank": "score_rank"}).assign(
        **{name: candidates[name].to_numpy() for name in rerank_columns}
    )
    recommendations = rerank.mmr_rerank(
        ranked, top_k=stage.settings.top_k, mmr_lambda=options.mmr_lambda, max_per_category=options.max_per_category
    )
    return scores, recommendations


@dataclass(frozen=True)
class DayScorer:
    """One ranker of the run date: the candidate columns it reads and its `offer_scores` rows of a
    chunk of candidates."""

    model_id: str
    columns: list[str]
    score: Callable[[pd.DataFrame], pd.DataFrame]
    description: str  # which ranker it is, in words


def model_ranker(scorer: Scorer, description: str) -> DayScorer:
    """The ranker of a registered model: its calibrated `offer_scores` rows of a chunk of candidates."""

    def by_model(chunk: pd.DataFrame) -> pd.DataFrame:
        raw, probabilities = calibrated_scores(scorer.model, scorer.calibrator, chunk)
        return score_frame(chunk, raw, probabilities, scorer.model_id, ranked_by="model")

    return DayScorer(scorer.model_id, scorer.record.features, by_model, description)


def _heuristic_ranker(prior: float, description: str) -> DayScorer:
    def by_heuristic(chunk: pd.DataFrame) -> pd.DataFrame:
        return score_frame(
            chunk,
            heuristic.raw_scores(chunk, prior),
            heuristic.scores(chunk, prior),
            heuristic.HEURISTIC_ID,
            ranked_by="heuristic",
        )

    return DayScorer(heuristic.HEURISTIC_ID, list(heuristic.FEATURES), by_heuristic, description)


@dataclass(frozen=True)
class DayServing:
    """Who ranks the run date: a ranker per variant with customers, the shadow (if any), and notes
    on what could not be served as configured."""

    variants: dict[str, DayScorer]
    shadow: DayScorer | None
    notes: list[str]

    @property
    def columns(self) -> list[str]:
        rankers = [*self.variants.values(), *([self.shadow] if self.shadow is not None else [])]
        return list(dict.fromkeys(name for ranker in rankers for name in ranker.columns))


def _day_serving(conn: psycopg.Connection, stage: StageRun, as_of: dt.date) -> DayServing:
    """The rankers of the run date's variants: treatment the champion (or the heuristic with no
    usable champion), control the heuristic, canary the challenger (or treatment's ranker with no
    challenger), and the shadow."""
    config = stage.settings.experiment
    champion = load_champion(conn, stage)
    prior = _prior_rate(conn, stage, as_of)
    if champion.scorer is not None:
        treatment = model_ranker(champion.scorer, f"ranked by champion {champion.model_id}")
    else:
        why = champion.problem or "there is no champion"
        treatment = _heuristic_ranker(prior, f"ranked by the heuristic: {why}")
    variants = {"treatment": treatment}
    notes = []
    if config.control_buckets:
        variants["control"] = _heuristic_ranker(prior, "control: the heuristic")
    if config.canary_buckets:
        canary, problem = _challenger(conn, stage, config.canary_model, "OFFERRANK_CANARY_MODEL")
        variants["canary"] = canary or treatment
        if canary is None:
            notes.append(f"canary served as treatment: {problem}")
    shadow = None
    if config.shadow != SHADOW_OFF:
        shadow, problem = _challenger(conn, stage, config.shadow, "OFFERRANK_SHADOW")
        if shadow is None:
            notes.append(f"no shadow: {problem}")
    return DayServing(variants, shadow, notes)


def _challenger(conn: psycopg.Connection, stage: StageRun, which: str, variable: str) -> tuple[DayScorer | None, str]:
    """The ranker of a challenger: `challenger`, the best-validated non-champion of the latest
    training that can score today, or a registered model id (an unknown id is a configuration error: it raises). None,
    and why, when there is no such model or it cannot score today."""
    if which in (CHALLENGER, SHADOW_CHALLENGER):
        training = load_training_config()
        records = data.latest_challengers(conn, stage.schema, training.primary_metric, training.tiebreak_metric)
        if not records:
            return None, "no challenger: the latest training left no model besides the champion"
    else:
        record = data.registered_model(conn, stage.schema, which)
        if record is None:
            raise LookupError(f"{variable} names model {which!r}, which is not in {stage.schema}.model_registry")
        records = [record]
    problems = []
    for record in records:  # the best one that can score today
        scorer, problem = _loaded(stage, record)
        if scorer is not None:
            return model_ranker(scorer, f"challenger {record.model_id}"), ""
        problems.append(f"{record.model_id}: {problem}")
    return None, f"no challenger can score today's candidates ({'; '.join(problems)})"


def candidate_rerank_columns(stage: StageRun) -> list[str]:
    """The candidate columns the re-ranker needs: the similarity attributes the marts have, and
    has_redeemed_offer."""
    available = set(stage.manifest.feature_columns(CANDIDATES_MODEL))
    attributes = [name for name in rerank.SIMILARITY_ATTRIBUTES if name in available]
    if "offer_category" not in attributes:
        raise LookupError(f"{CANDIDATES_MODEL} has no offer_category: the per-category rule needs it")
    return [*attributes, "has_redeemed_offer"]


def explain_recommendations(stage: StageRun) -> dict[str, int]:
    """Replace the run date's explanations: each recommendation's top features by |contribution|.

    Contributions come from the model that ranked the offer: TreeSHAP (LightGBM's pred_contrib)
    or coefficient x standardised value (logistic regression); for the heuristic, its two log
    factors.
    """
    with data.connect(stage.settings) as conn:
        as_of = run_date(conn, stage.manifest)
        with data.recorded_stage(conn, stage.schema, stage.run_id, "explain", as_of) as log:
            frames = [
                _explanations(conn, stage, as_of, model_id)
                for (model_id,) in conn.execute(
                    sql.SQL("select distinct model_id from {} where score_date = %s order by model_id").format(
                        sql.Identifier(stage.schema, "recommendations")
                    ),
                    (as_of,),
                ).fetchall()
            ]
            explanations = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EXPLANATION_COLUMNS)
            written = data.replace_explanations(conn, stage.schema, as_of, explanations)
            log.counts["rows_written"] = written
    return log.counts


def _explanations(conn: psycopg.Connection, stage: StageRun, as_of: dt.date, model_id: str) -> pd.DataFrame:
    """The explanation rows of the recommendations `model_id` ranked on `as_of`."""
    if model_id == heuristic.HEURISTIC_ID:
        record, columns = None, list(heuristic.FEATURES)
    else:
        record = data.registered_model(conn, stage.schema, model_id)
        if record is None:
            raise LookupError(f"recommendations of {as_of} name model {model_id!r}, which is not in the registry")
        columns = record.features
    query = sql.SQL(
        "select {columns} from {candidates} as candidates inner join {recommendations} as recommendations"
        " on candidates.as_of_date = recommendations.score_date"
        " and candidates.customer_id = recommendations.customer_id and candidates.offer_id = recommendations.offer_id"
        " where recommendations.score_date = %s and recommendations.model_id = %s"
        " order by candidates.customer_id, candidates.offer_id"
    ).format(
        columns=sql.SQL(", ").join(
            sql.Identifier("candidates", column) for column in dict.fromkeys([*CANDIDATE_KEYS, *columns])
        ),
        candidates=stage.manifest.relation(CANDIDATES_MODEL),
        recommendations=sql.Identifier(stage.schema, "recommendations"),
    )
    frame = data.copy_out(conn, query, (as_of, model_id))
    if record is None:
        factors = heuristic.log_factors(frame, _prior_rate(conn, stage, as_of))
        contributions = np.column_stack([factors, np.zeros(len(frame))])  # no bias term
    else:
        contributions = Scorer.from_record(record).model.contributions(frame)
    keys = frame[CANDIDATE_KEYS].rename(columns={"as_of_date": "score_date"})
    top = top_contributions(keys, contributions, frame[columns], TOP_CONTRIBUTIONS)
    return top.assign(model_id=model_id)[EXPLANATION_COLUMNS]


# --- the run summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """What a run wrote, for the end of `offerrank run`."""

    run_date: dt.date | None
    stages: list[dict[str, object]]  # step, status, seconds, message
    table_rows: dict[str, int]  # rows of the run date in each output table
    champion_id: str | None
    validation_metrics: dict[str, dict[str, float]]  # scorer -> metric -> value, on the run date's window
    largest_drifts: pd.DataFrame  # the run date's 5 features with the largest PSI: feature, kind, psi, ks, model_id
    served_metrics: dict[str, dict[str, float]]  # the same for the list metrics of the lists as served
    # the shadow's overlap@k with the served lists: variant, model_id, k, customers, overlap_at_k (empty: no shadow)
    shadow_agreement: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_summary(settings: Settings, run_id: str) -> RunSummary:
    """Collect the stages of `run_id` from `pipeline_runs` and the rows it left in the output tables."""
    with data.connect(settings) as conn:
        stages = data.stage_log(conn, settings.ml_schema, run_id)
        dates = [row["run_date"] for row in stages if row["run_date"] is not None]
        as_of = dates[0] if dates else None
        champion = data.champion_model(conn, settings.ml_schema)
        return RunSummary(
            run_date=as_of,
            stages=stages,
            table_rows=data.output_row_counts(conn, settings.ml_schema, as_of),
            champion_id=champion.model_id if champion else None,
            validation_metrics=data.validation_metrics(conn, settings.ml_schema, as_of) if as_of else {},
            largest_drifts=data.largest_drifts(conn, settings.ml_schema, as_of) if as_of else pd.DataFrame(),
            served_metrics=data.validation_metrics(conn, settings.ml_schema, as_of, "served") if as_of else {},
            shadow_agreement=data.shadow_agreement(conn, settings.ml_schema, as_of) if as_of else pd.DataFrame(),
        )


# --- the run report ------------------------------------------------------------------------------------


def write_report(
    stage: StageRun, policy: ModelPolicy, as_of: dt.date | None = None, output: Path | None = None
) -> Path:
    """Write the HTML report of `as_of` (default: the run date) and return its path.

    It shows the model that ranked that date's recommendations (before they exist, the champion,
    or the heuristic when there is no usable one) against the oracle on the date's validation
    window, every scorer's metrics, the model's feature importance and the date's feature drift.
    """
    with data.connect(stage.settings) as conn:
        as_of = as_of or run_date(conn, stage.manifest)
        report = _report_data(conn, stage, as_of, policy)
    path = output or stage.settings.home / "reports" / f"report-{as_of}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report))
    return path


def _report_data(conn: psycopg.Connection, stage: StageRun, as_of: dt.date, policy: ModelPolicy) -> ReportData:
    metrics = data.date_rows(conn, stage.schema, "eval_metrics", "as_of_date", as_of)
    if not metrics.empty:  # the report is about all customers; segments are for BI to slice
        metrics = metrics[metrics["segment"] == "all"]
    if metrics.empty:
        raise LookupError(f"no evaluation for {as_of} in {stage.schema}.eval_metrics: run the pipeline for that date")
    model_id = data.ranking_model(conn, stage.schema, as_of)
    if model_id is None:
        champion = load_champion(conn, stage)
        model_id = champion.model_id if champion.scorer is not None else heuristic.HEURISTIC_ID
    rows = metrics[metrics["model_id"] == model_id]
    if rows.empty:
        raise LookupError(f"{stage.schema}.eval_metrics has no rows of {model_id} for {as_of}")
    window = (rows["window_start_date"].iloc[0], rows["window_end_date"].iloc[0])
    record = None if model_id == heuristic.HEURISTIC_ID else data.registered_model(conn, stage.schema, model_id)
    features = list(heuristic.FEATURES) if record is None else record.features
    examples = read_examples(conn, stage.manifest, features, window)
    labels = examples["label"].to_numpy()
    if record is None:
        served = ScoredWindow(model_id, labels, heuristic.raw_scores(examples, _window_prior_rate(examples)), None)
        importance = pd.DataFrame(columns=["feature", "importance_type", "importance"])
    else:
        scorer = Scorer.from_record(record)
        served = ScoredWindow(model_id, labels, *calibrated_scores(scorer.model, scorer.calibrator, examples))
        importance = data.date_rows(conn, stage.schema, "feature_importance", "model_id", model_id)
        # LightGBM's gain where there is one; logistic regression's mean |contribution| otherwise
        kind = "gain" if "gain" in set(importance["importance_type"]) else importance["importance_type"].min()
        importance = importance[importance["importance_type"] == kind]
    truth = _oracle_probabilities(conn, stage.settings, examples)
    oracle = None if truth is None else ScoredWindow(ORACLE_MODEL_ID, labels, truth, truth)
    return ReportData(
        as_of_date=as_of,
        model_id=model_id,
        window=window,
        metrics=metrics,
        served=served,
        oracle=oracle,
        importance=importance,
        drift=data.date_rows(conn, stage.schema, "feature_drift", "as_of_date", as_of),
        drift_threshold=policy.drift_threshold,
    )
