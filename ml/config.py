"""The one place that reads the environment: connection settings, paths and run-time defaults.

With no PG* variables set, offerrank uses its embedded PostgreSQL on 127.0.0.1 at a fixed port.
Setting PGHOST points dbt, Dagster and `ml` at another server instead; `profiles/profiles.yml`
reads the same variables with the same defaults.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WAREHOUSE_DIR = PROJECT_ROOT / "warehouse"
PROFILES_DIR = PROJECT_ROOT / "profiles"


def dbt_target_path(project_dir: Path = WAREHOUSE_DIR) -> Path:
    """Where dbt writes the manifest and run results of `project_dir`: dbt's own DBT_TARGET_PATH,
    read as dbt reads it (relative to the project), else the project's `target/`."""
    return project_dir / os.environ.get("DBT_TARGET_PATH", "target")


# These defaults are repeated in profiles/profiles.yml, which cannot import Python.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55432
DEFAULT_USER = "postgres"
DEFAULT_DATABASE = "offerrank"
# Repeated in warehouse/dbt_project.yml and warehouse/macros/reader_role.sql.
DEFAULT_READER_ROLE = "offerrank_reader"


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the warehouse is. Never print `password`; use `describe()` for messages."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    embedded: bool

    def conninfo(self, dbname: str | None = None) -> str:
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password or None,
            dbname=dbname or self.dbname,
            application_name="offerrank",
            # Dates are cut from timestamps in UTC, whatever the server default.
            options="-c TimeZone=UTC",
        )

    def describe(self) -> str:
        """A connection description safe to print: no password."""
        kind = "embedded" if self.embedded else "external"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname} ({kind})"


@dataclass(frozen=True)
class RerankConfig:
    """How each customer's scored offers become the day's recommendations (ml/rerank.py)."""

    # MMR trade-off: 1 ranks by score alone, lower values trade score for offers unlike those
    # already picked (same category, brand kind and discount band count as alike).
    mmr_lambda: float = 0.8
    max_per_category: int = 2  # at most this many of a customer's recommendations share an offer_category

    def __post_init__(self) -> None:
        if not 0 <= self.mmr_lambda <= 1:
            raise ValueError(f"mmr_lambda (OFFERRANK_MMR_LAMBDA) must be between 0 and 1, got {self.mmr_lambda!r}")
        if self.max_per_category < 1:
            raise ValueError(
                f"max_per_category (OFFERRANK_MAX_PER_CATEGORY) must be at least 1, got {self.max_per_category!r}"
            )


def load_rerank_config(environ: os._Environ[str] | dict[str, str] | None = None) -> RerankConfig:
    """Re-ranking settings: the defaults above, overridden by OFFERRANK_MMR_LAMBDA and
    OFFERRANK_MAX_PER_CATEGORY."""
    env = os.environ if environ is None else environ
    overrides: dict[str, object] = {}
    for variable, name, kind in (
        ("OFFERRANK_MMR_LAMBDA", "mmr_lambda", float),
        ("OFFERRANK_MAX_PER_CATEGORY", "max_per_category", int),
    ):
        if text := env.get(variable, "").strip():
            try:
                overrides[name] = kind(text)
            except ValueError:
                raise ValueError(
                    f"{variable} must be {'a number' if kind is float else 'an integer'}, got {text!r}"
                ) from None
    return RerankConfig(**overrides)


# Assignment hashes each customer into one of this many buckets; shares are whole buckets.
BUCKETS = 10_000
VARIANTS = ("control", "treatment", "canary")
SHADOW_OFF, SHADOW_CHALLENGER = "off", "challenger"
CHALLENGER = "challenger"  # the canary's model by default: the best non-champion of the latest training


@dataclass(frozen=True)
class ExperimentConfig:
    """Who is served by what (ml/experiment.py, docs/experiments.md).

    Each customer falls in one of BUCKETS buckets by a salted hash of the experiment id and their
    id: the first `control_share` of the buckets are `control` (the heuristic ranking), the next
    `canary_share` are `canary` (the challenger), the rest `treatment` (the champion). The
    defaults put everyone in treatment, which is what serving did before experiments existed.
    """

    experiment_id: str = "default"
    salt: str = "offerrank"
    treatment_share: float = 1.0
    canary_share: float = 0.0
    canary_model: str = CHALLENGER  # or a registered model_id
    shadow: str = SHADOW_OFF  # off, challenger, or a registered model_id scored beside serving, never served

    def __post_init__(self) -> None:
        if not self.experiment_id or len(self.experiment_id) > 200:
            raise ValueError(f"OFFERRANK_EXPERIMENT must be a name of 1 to 200 characters, got {self.experiment_id!r}")
        if not self.salt:
            raise ValueError("OFFERRANK_EXPERIMENT_SALT must not be empty")
        for variable, share in (
            ("OFFERRANK_TREATMENT_SHARE", self.treatment_share),
            ("OFFERRANK_CANARY_SHARE", self.canary_share),
        ):
            if not 0 <= share <= 1 or abs(round(share * BUCKETS) - share * BUCKETS) > 1e-6:
                raise ValueError(
                    f"{variable} must be a share between 0 and 1 in steps of {1 / BUCKETS:g}, got {share!r}"
                )
        if self.treatment_buckets + self.canary_buckets > BUCKETS:
            raise ValueError(
                f"OFFERRANK_TREATMENT_SHARE {self.treatment_share:g} and OFFERRANK_CANARY_SHARE"
                f" {self.canary_share:g} add up to more than 1; control gets what they leave"
            )
        if not self.canary_model or not self.shadow:
            raise ValueError("OFFERRANK_CANARY_MODEL and OFFERRANK_SHADOW must not be empty")

    @property
    def control_buckets(self) -> int:
        return BUCKETS - self.treatment_buckets - self.canary_buckets

    @property
    def canary_buckets(self) -> int:
        return round(self.canary_share * BUCKETS)

    @property
    def treatment_buckets(self) -> int:
        return round(self.treatment_share * BUCKETS)


def load_experiment_config(environ: os._Environ[str] | dict[str, str] | None = None) -> ExperimentConfig:
    """The experiment: OFFERRANK_EXPERIMENT (its id), OFFERRANK_EXPERIMENT_SALT,
    OFFERRANK_TREATMENT_SHARE (default: all that the canary leaves), OFFERRANK_CANARY_SHARE,
    OFFERRANK_CANARY_MODEL (`challenger` or a model id) and OFFERRANK_SHADOW (`off`, `on` or
    `challenger`, or a model id)."""
    env = os.environ if environ is None else environ
    defaults = ExperimentConfig()
    canary = _share(env, "OFFERRANK_CANARY_SHARE", defaults.canary_share)
    shadow = env.get("OFFERRANK_SHADOW", "").strip() or SHADOW_OFF
    shadow = {"on": SHADOW_CHALLENGER, "true": SHADOW_CHALLENGER, "false": SHADOW_OFF}.get(shadow.lower(), shadow)
    return ExperimentConfig(
        experiment_id=env.get("OFFERRANK_EXPERIMENT", "").strip() or defaults.experiment_id,
        salt=env.get("OFFERRANK_EXPERIMENT_SALT", "").strip() or defaults.salt,
        treatment_share=_share(env, "OFFERRANK_TREATMENT_SHARE", round(1 - canary, 4)),
        canary_share=canary,
        canary_model=env.get("OFFERRANK_CANARY_MODEL", "").strip() or defaults.canary_model,
        shadow=shadow.lower() if shadow.lower() in (SHADOW_OFF, SHADOW_CHALLENGER) else shadow,
    )


def _share(env: os._Environ[str] | dict[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    try:
        return float(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a share between 0 and 1, got {text!r}") from None


@dataclass(frozen=True)
class OffPolicyConfig:
    """The off-policy estimate of the champion's redemption rate from logged data (ml/off_policy.py,
    docs/experiments.md)."""

    # The last days of stochastically logged, labelled impressions the estimate reads; passed to
    # dbt as the var off_policy_window_days (its default there is the same).
    window_days: int = 14
    bootstrap_samples: int = 1000  # resamples of customers for the confidence intervals
    confidence: float = 0.95
    seed: int = 7  # the bootstrap's: the same data give the same intervals

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError(
                f"window_days (OFFERRANK_OFF_POLICY_WINDOW_DAYS) must be at least 1, got {self.window_days!r}"
            )
        if self.bootstrap_samples < 1:
            raise ValueError(
                f"bootstrap_samples (OFFERRANK_OFF_POLICY_BOOTSTRAP) must be at least 1, got {self.bootstrap_samples!r}"
            )
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence!r}")


def load_off_policy_config(environ: os._Environ[str] | dict[str, str] | None = None) -> OffPolicyConfig:
    """Off-policy settings: the defaults above, overridden by OFFERRANK_OFF_POLICY_WINDOW_DAYS and
    OFFERRANK_OFF_POLICY_BOOTSTRAP."""
    env = os.environ if environ is None else environ
    overrides: dict[str, int] = {}
    for variable, name in (
        ("OFFERRANK_OFF_POLICY_WINDOW_DAYS", "window_days"),
        ("OFFERRANK_OFF_POLICY_BOOTSTRAP", "bootstrap_samples"),
    ):
        if text := env.get(variable, "").strip():
            try:
                overrides[name] = int(text)
            except ValueError:
                raise ValueError(f"{variable} must be an integer, got {text!r}") from None
    return OffPolicyConfig(**overrides)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a run, read once from the environment."""

    database: DatabaseSettings
    home: Path
    raw_schema: str = "raw"
    ml_schema: str = "ml"
    truth_schema: str = "truth"  # the simulator's ground truth; no dbt model may read it
    reader_role: str = DEFAULT_READER_ROLE  # the NOLOGIN role BI logins join: SELECT on marts and ml only
    top_k: int = 5
    rerank: RerankConfig = field(default_factory=RerankConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    off_policy: OffPolicyConfig = field(default_factory=OffPolicyConfig)
    # The first date of the Dagster daily partitions; a run date before it cannot be materialized.
    first_date: dt.date = dt.date(2025, 1, 1)
    # How long a run waits for another run of the same warehouse to finish before it stops.
    lock_wait_seconds: float = 3600.0
    # How many customer shards the sharded scoring job splits a date into (orchestration/sharded.py,
    # docs/scaling.md); the daily run scores the whole date at once whatever it says.
    scoring_shards: int = 4

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


# PostgreSQL cuts longer identifiers short with a mere notice: the schema or role created would not
# be the one later looked up by name.
MAX_IDENTIFIER_BYTES = 63


def _identifier(env: os._Environ[str] | dict[str, str], variable: str, default: str) -> str:
    """A schema or role name from the environment, used verbatim (every statement quotes it)."""
    name = env.get(variable, default)
    if not name or len(name.encode()) > MAX_IDENTIFIER_BYTES or "\x00" in name:
        raise ValueError(f"{variable} must be a name of 1 to {MAX_IDENTIFIER_BYTES} bytes, got {name!r}")
    return name


def load_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables (the process environment by default)."""
    env = os.environ if environ is None else environ
    database = DatabaseSettings(
        host=env.get("PGHOST", DEFAULT_HOST),
        port=int(env.get("PGPORT", DEFAULT_PORT)),
        user=env.get("PGUSER", DEFAULT_USER),
        password=env.get("PGPASSWORD", ""),
        dbname=env.get("PGDATABASE", DEFAULT_DATABASE),
        embedded="PGHOST" not in env,
    )
    return Settings(
        database=database,
        home=Path(env.get("OFFERRANK_HOME", PROJECT_ROOT / ".offerrank")).resolve(),
        raw_schema=_identifier(env, "OFFERRANK_RAW_SCHEMA", "raw"),
        ml_schema=_identifier(env, "OFFERRANK_ML_SCHEMA", "ml"),
        truth_schema=_identifier(env, "OFFERRANK_TRUTH_SCHEMA", "truth"),
        reader_role=_identifier(env, "OFFERRANK_READER_ROLE", DEFAULT_READER_ROLE),
        top_k=int(env.get("OFFERRANK_TOP_K", 5)),
        rerank=load_rerank_config(env),
        experiment=load_experiment_config(env),
        off_policy=load_off_policy_config(env),
        first_date=_date(env, "OFFERRANK_FIRST_DATE", Settings.first_date),
        lock_wait_seconds=_non_negative(env, "OFFERRANK_LOCK_WAIT_SECONDS", Settings.lock_wait_seconds),
        scoring_shards=_shard_count(env),
    )


# More shards than this is a mistake rather than a plan: each is a Dagster partition of every date.
MAX_SCORING_SHARDS = 1024


def _shard_count(env: os._Environ[str] | dict[str, str]) -> int:
    text = env.get("OFFERRANK_SCORING_SHARDS", "").strip()
    try:
        count = int(text) if text else Settings.scoring_shards
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SCORING_SHARDS:
        raise ValueError(
            f"OFFERRANK_SCORING_SHARDS must be a whole number of customer shards from 1 to {MAX_SCORING_SHARDS},"
            f" got {text!r}"
        )
    return count


@dataclass(frozen=True)
class Shard:
    """One of `count` customer shards of a date: the customers whose stable hash modulo `count` is
    `index` (`ml.data.shard_filter`)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= MAX_SCORING_SHARDS:
            raise ValueError(
                f"a shard is an index from 0 to count - 1 of 1 to {MAX_SCORING_SHARDS} shards,"
                f" got shard {self.index} of {self.count}"
            )

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def _date(env: os._Environ[str] | dict[str, str], name: str, default: dt.date) -> dt.date:
    text = env.get(name, "").strip()
    try:
        return dt.date.fromisoformat(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a date as YYYY-MM-DD, got {text!r}") from None


ALGORITHMS = ("logreg", "lgbm_binary", "lgbm_lambdarank")
CALIBRATION_METHODS = ("platt", "isotonic")
CLASS_WEIGHTINGS = ("none", "balanced")

# Shared by both LightGBM objectives. The last four make re-runs idempotent: same data, same
# model, byte for byte.
_LGBM_PARAMS: dict[str, object] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}


@dataclass(frozen=True)
class TrainingConfig:
    """How models are trained, calibrated and judged; one place for every knob.

    Invalid values raise ValueError here, so a bad environment variable fails before any training.
    """

    valid_days: int = 14  # the last days of labelled impressions: evaluation and model selection only
    tune_days: int = 7  # the days before those: early stopping and calibration
    num_boost_round: int = 500
    early_stopping_rounds: int = 20
    eval_k: tuple[int, ...] = (3, 5, 10)  # list cutoffs of the @k metrics; served lists are re-ranked to the largest
    # Customer attributes (columns of fct_training_examples) whose values are evaluation segments,
    # besides 'all': ml.eval_metrics.segment '<column>=<value>'.
    segment_columns: tuple[str, ...] = ("business_type",)
    seed: int = 7  # LightGBM's seed and the negative sampler's
    # Keep this many negatives per positive in the training window (None: keep all). Kept negatives
    # are weighted up by the inverse of their sampling rate; the tune and validation windows are
    # never sampled.
    negatives_per_positive: float | None = None
    algorithms: tuple[str, ...] = ALGORITHMS  # the candidates trained each run
    # Feature drift compares at most this many scoring candidates of the champion's training date
    # (kept in ml.drift_reference) with as many of today's, each a deterministic sample by key hash,
    # so its storage and memory do not grow with the data.
    drift_sample_rows: int = 20_000
    evaluation_threads: int = 2  # scorers judged at once on the validation window (as LightGBM's num_threads)
    primary_metric: str = "ndcg@5"  # the champion is the candidate best on this validation metric
    tiebreak_metric: str = "roc_auc"
    calibration: str = "platt"  # how raw scores become probabilities, fitted on the tune window
    class_weighting: str = "balanced"  # for the binary objectives; lambdarank ranks within a customer
    lgbm_binary_params: dict[str, object] = field(
        default_factory=lambda: {"objective": "binary", "metric": "auc", **_LGBM_PARAMS}
    )
    lgbm_lambdarank_params: dict[str, object] = field(
        default_factory=lambda: {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [5],
            # gain 2^grade - 1 for grades 0..3 (none, view, click, redeem), as ml.evaluate's NDCG
            "label_gain": [0.0, 1.0, 3.0, 7.0],
            **_LGBM_PARAMS,
        }
    )
    logreg_params: dict[str, object] = field(default_factory=lambda: {"C": 1.0, "max_iter": 1000, "tol": 1e-4})

    def __post_init__(self) -> None:
        if not self.eval_k or min(self.eval_k) < 1:
            raise ValueError(f"eval_k must be list cutoffs of at least 1, got {self.eval_k!r}")
        for name in ("valid_days", "tune_days", "drift_sample_rows", "evaluation_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.negatives_per_positive is not None and self.negatives_per_positive <= 0:
            raise ValueError(
                "negatives_per_positive (OFFERRANK_NEGATIVES_PER_POSITIVE) must be a positive number,"
                f" got {self.negatives_per_positive!r}"
            )
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if not self.algorithms or unknown or len(set(self.algorithms)) < len(self.algorithms):
            raise ValueError(
                f"algorithms (OFFERRANK_ALGORITHMS) must be distinct names from {', '.join(ALGORITHMS)};"
                f" got {', '.join(self.algorithms) or 'none'}"
            )
        _check_choice("calibration (OFFERRANK_CALIBRATION)", self.calibration, CALIBRATION_METHODS)
        _check_choice("class_weighting (OFFERRANK_CLASS_WEIGHTING)", self.class_weighting, CLASS_WEIGHTINGS)
        # Selection takes the highest value, so only metrics where higher is better can decide it.
        selectable = ("roc_auc", *(f"ndcg@{k}" for k in self.eval_k))
        _check_choice("primary_metric (OFFERRANK_PRIMARY_METRIC)", self.primary_metric, selectable)
        _check_choice("tiebreak_metric", self.tiebreak_metric, selectable)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def load_training_config(environ: os._Environ[str] | dict[str, str] | None = None) -> TrainingConfig:
    """Training settings: the defaults above, with the ones the environment overrides."""
    env = os.environ if environ is None else environ
    overrides: dict[str, object] = {}
    if ratio := env.get("OFFERRANK_NEGATIVES_PER_POSITIVE", "").strip():
        try:
            overrides["negatives_per_positive"] = float(ratio)
        except ValueError:
            raise ValueError(f"OFFERRANK_NEGATIVES_PER_POSITIVE must be a positive number, got {ratio!r}") from None
    if algorithms := env.get("OFFERRANK_ALGORITHMS", "").strip():
        overrides["algorithms"] = tuple(name.strip() for name in algorithms.split(","))
    for variable, name in (
        ("OFFERRANK_CALIBRATION", "calibration"),
        ("OFFERRANK_CLASS_WEIGHTING", "class_weighting"),
        ("OFFERRANK_PRIMARY_METRIC", "primary_metric"),
    ):
        if value := env.get(variable, "").strip():
            overrides[name] = value
    return TrainingConfig(**overrides)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class ModelPolicy:
    """When to retrain and when a newly trained model replaces the champion."""

    # Retrain on these weekdays of the run date (0 = Monday, as date.weekday()); other days score
    # with the champion. A run also retrains with no usable champion, when forced, or on drift.
    retrain_weekdays: frozenset[int] = frozenset({0})
    # A challenger is promoted only if it beats the champion's primary metric on the same fresh
    # validation window by at least this much: noise alone should not swap models.
    promotion_margin: float = 0.002
    # The drift sensor launches retraining when the drift signal (the largest per-feature drift
    # of the day) exceeds this.
    drift_threshold: float = 0.25
    # The champion's primary metric may fall at most this much below the previous run date's
    # champion's before the metric check of ml.eval_metrics fails.
    metric_tolerance: float = 0.05


def load_model_policy(environ: os._Environ[str] | dict[str, str] | None = None) -> ModelPolicy:
    """The model policy: defaults above, overridden by OFFERRANK_RETRAIN_ON (comma-separated weekday
    names, or `never`), OFFERRANK_PROMOTION_MARGIN, OFFERRANK_DRIFT_THRESHOLD and OFFERRANK_METRIC_TOLERANCE."""
    env = os.environ if environ is None else environ
    defaults = ModelPolicy()
    weekdays = defaults.retrain_weekdays
    if text := env.get("OFFERRANK_RETRAIN_ON", "").strip().lower():
        names = [] if text == "never" else [name.strip() for name in text.split(",")]
        unknown = [name for name in names if name not in WEEKDAYS]
        if unknown:
            raise ValueError(
                f"OFFERRANK_RETRAIN_ON: unknown weekday(s) {unknown}; use names like monday,thursday or never"
            )
        weekdays = frozenset(WEEKDAYS.index(name) for name in names)
    return ModelPolicy(
        retrain_weekdays=weekdays,
        promotion_margin=_non_negative(env, "OFFERRANK_PROMOTION_MARGIN", defaults.promotion_margin),
        drift_threshold=_non_negative(env, "OFFERRANK_DRIFT_THRESHOLD", defaults.drift_threshold),
        metric_tolerance=_non_negative(env, "OFFERRANK_METRIC_TOLERANCE", defaults.metric_tolerance),
    )


def _non_negative(env: os._Environ[str] | dict[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {text!r}")
    return value


def code_version(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """The offerrank version that trains a model: OFFERRANK_CODE_VERSION, else the git commit of
    the checkout (with `+dirty` for uncommitted changes), else `unknown` (e.g. an installed wheel)."""
    env = os.environ if environ is None else environ
    if version := env.get("OFFERRANK_CODE_VERSION", "").strip():
        return version
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit
