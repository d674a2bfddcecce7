"""Off-policy estimate of the champion's redemption rate from stochastically logged impressions.

The logging policy (docs/simulator.md) shows each eligible offer of a visit independently, with a
logged propensity p_i = P(offer i shown in the visit). The model policy shows each visit its
top-K list: the champion's scores of all the visit's candidates (fct_logged_visit_candidates,
built like the run date's fct_scoring_candidates), re-ranked by MMR under the business rules,
exactly as serving does. With w_i = pi_i / p_i (pi_i = 1 when the model's list holds the offer,
else 0) and r_i the impression's label (redeemed within 7 days):

    IPS   = sum_i w_i r_i / sum_v L_v       L_v: the model's list length in visit v
    SNIPS = sum_i w_i r_i / sum_i w_i

both over the logged impressions i of the window's visits v. E[sum_i w_i] = sum_v L_v, so SNIPS
replaces IPS's known denominator by its own unbiased estimate: a weighted mean of the matched
impressions' labels with weights 1/p_i, biased but consistent and of lower variance. Intervals
are percentile bootstraps over customers (whole customers are resampled with all their visits),
seeded; the effective sample size is Kish's (sum w)^2 / sum w^2. docs/experiments.md has the
assumptions (independent item rewards, support) and how to read the result next to the online one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from ml import data, pipeline
from ml.config import OffPolicyConfig
from ml.features import SERVED_IMPRESSIONS_MODEL, VISIT_CANDIDATES_MODEL
from ml.pipeline import CANDIDATE_KEYS, StageRun

ESTIMATORS = ("ips", "snips", "logging_policy", "online_treatment")
LOGGED_COLUMNS = ["logged_impressions", "redeemed_impressions", "propensity"]
ESTIMATE_COLUMNS = [
    "as_of_date", "model_id", "estimator", "window_start", "window_end", "value", "ci_low", "ci_high",
    "confidence", "bootstrap_samples", "visits", "logged_impressions", "matched_impressions",
    "policy_impressions", "effective_sample_size", "overlaps_training",
]  # fmt: skip


@dataclass(frozen=True)
class LoggedOutcomes:
    """A window's logged impressions, one entry each, and its visits, one entry each.

    `weight` is the target policy's probability of showing the impression's offer in its visit
    divided by the logged propensity (0 when the target never shows it); `list_length`, the
    number of offers the target policy shows in the visit (its expectation, for a stochastic one).
    """

    customer: np.ndarray  # per impression
    reward: np.ndarray  # per impression: its label, 0 or 1
    weight: np.ndarray  # per impression
    visit_customer: np.ndarray  # per visit
    list_length: np.ndarray  # per visit


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its interval and the counts behind it."""

    value: float
    ci_low: float
    ci_high: float
    visits: int
    logged_impressions: int
    matched_impressions: int
    policy_impressions: int
    effective_sample_size: float


def _customer_sums(
    customer: np.ndarray, per_impression: list[np.ndarray], visit_customer: np.ndarray, per_visit: list[np.ndarray]
) -> np.ndarray:
    """(customers, columns) sums of the per-impression and per-visit columns by customer."""
    codes, index = np.unique(np.concatenate([customer, visit_customer]), return_inverse=True)
    impression_index, visit_index = index[: len(customer)], index[len(customer) :]
    columns = [np.bincount(impression_index, weights=values, minlength=len(codes)) for values in per_impression]
    columns += [np.bincount(visit_index, weights=values, minlength=len(codes)) for values in per_visit]
    return np.column_stack(columns) if columns else np.zeros((len(codes), 0))


def _ratio(totals: np.ndarray) -> float:
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def bootstrap_interval(
    sums: np.ndarray, statistic: Callable[[np.ndarray], float], samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of `statistic` (of column totals) over `samples` resamples of the rows of
    `sums` (one per customer) with replacement; seeded, so the same data give the same interval."""
    if len(sums) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = len(sums)
    values = np.array([statistic(np.bincount(rng.integers(0, n, n), minlength=n) @ sums) for _ in range(samples)])
    if np.isnan(values).all():
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail])
    return float(low), float(high)


def kish_ess(weight: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2; 0 without weight."""
    squares = float(np.square(weight).sum())
    return float(weight.sum()) ** 2 / squares if squares > 0 else 0.0


def ips_estimates(outcomes: LoggedOutcomes, config: OffPolicyConfig) -> dict[str, Estimate]:
    """IPS and SNIPS of the target policy's redemption rate per impression (module docstring)."""
    weight, reward = outcomes.weight.astype(float), outcomes.reward.astype(float)
    lengths_per_visit = outcomes.list_length.astype(float)
    sums = _customer_sums(outcomes.customer, [weight * reward, weight], outcomes.visit_customer, [lengths_per_visit])
    numerator, weights, lengths = sums.sum(axis=0) if len(sums) else (0.0, 0.0, 0.0)
    counts = {
        "visits": len(outcomes.visit_customer),
        "logged_impressions": len(reward),
        "matched_impressions": int((weight > 0).sum()),
        "policy_impressions": round(float(lengths)),
        "effective_sample_size": kish_ess(weight),
    }
    estimates = {}
    for name, columns in (("ips", [0, 2]), ("snips", [0, 1])):
        value = _ratio(np.array([numerator, lengths if name == "ips" else weights]))
        low, high = bootstrap_interval(
            sums[:, columns], _ratio, config.bootstrap_samples, config.confidence, config.seed
        )
        estimates[name] = Estimate(value, low, high, **counts)
    return estimates


def on_policy_rate(customer: np.ndarray, reward: np.ndarray, visits: int, config: OffPolicyConfig) -> Estimate:
    """The plain mean label of impressions a policy chose itself, with the same bootstrap over customers."""
    reward = reward.astype(float)
    sums = _customer_sums(customer, [reward, np.ones(len(reward))], np.zeros(0, dtype=customer.dtype), [])
    value = _ratio(sums.sum(axis=0)) if len(sums) else float("nan")
    low, high = bootstrap_interval(sums, _ratio, config.bootstrap_samples, config.confidence, config.seed)
    n = len(reward)
    return Estimate(value, low, high, visits, n, n, n, float(n))


# --- the stage: the champion's lists of the logged visits, and the estimates ---------------------------


def _visit_outcomes(
    chunk: pd.DataFrame, ranker: pipeline.DayScorer, stage: StageRun, rerank_columns: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chunk's logged (visit, offer) rows with `is_listed`, whether the model's list of their
    visit holds the offer, and the chunk's visits with the length of that list.

    The re-ranker makes one list per customer_id: a visit is one customer's list on one day, so
    visit numbers stand in for the customer ids while ranking."""
    visit = chunk.groupby(["customer_id", "as_of_date"], sort=False).ngroup().to_numpy()  # in order of appearance
    lists = pipeline.ranked_lists(chunk.assign(customer_id=visit), ranker, stage, rerank_columns)[1]
    is_listed = pd.MultiIndex.from_arrays([visit, chunk["offer_id"].to_numpy()]).isin(
        pd.MultiIndex.from_frame(lists[["customer_id", "offer_id"]])
    )
    shown = (chunk["logged_impressions"] > 0).to_numpy()
    logged = chunk.loc[shown, ["customer_id", "as_of_date", *LOGGED_COLUMNS]].assign(is_listed=is_listed[shown])
    visits = chunk.loc[~pd.Series(visit).duplicated().to_numpy(), ["customer_id", "as_of_date"]].assign(
        list_length=np.bincount(lists["customer_id"].to_numpy(dtype=int), minlength=int(visit.max()) + 1)
    )
    return logged, visits


def logged_outcomes(logged: pd.DataFrame, visits: pd.DataFrame) -> LoggedOutcomes:
    """LoggedOutcomes of a deterministic target policy from the logged (visit, offer) rows (with
    LOGGED_COLUMNS and is_listed) and the visits (with list_length): one entry per impression."""
    count = logged["logged_impressions"].to_numpy(dtype=int)
    redeemed = logged["redeemed_impressions"].to_numpy(dtype=int)
    rows = np.repeat(np.arange(len(logged)), count)
    # a pair shown n times with r redeemed is n impressions, the first r of them redeemed
    position = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    weight = logged["is_listed"].to_numpy(dtype=float) / logged["propensity"].to_numpy(dtype=float)
    return LoggedOutcomes(
        customer=logged["customer_id"].to_numpy()[rows],
        reward=(position < redeemed[rows]).astype(int),
        weight=weight[rows],
        visit_customer=visits["customer_id"].to_numpy(),
        list_length=visits["list_length"].to_numpy(),
    )


def _champion_outcomes(
    reader: psycopg.Connection, stage: StageRun, champion: pipeline.Scorer
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The logged (visit, offer) rows and the visits of the window, with the champion's lists."""
    ranker = pipeline.model_ranker(champion, f"champion {champion.model_id}")
    rerank_columns = pipeline.candidate_rerank_columns(stage)
    columns = list(dict.fromkeys([*CANDIDATE_KEYS, *ranker.columns, *rerank_columns, *LOGGED_COLUMNS]))
    blocks = data.iter_visit_candidates(reader, stage.manifest.relation(VISIT_CANDIDATES_MODEL), columns)
    parts = [_visit_outcomes(chunk, ranker, stage, rerank_columns) for chunk in pipeline.customer_chunks(blocks)]
    if not parts:
        empty_logged = pd.DataFrame(columns=["customer_id", "as_of_date", *LOGGED_COLUMNS, "is_listed"])
        return empty_logged, pd.DataFrame(columns=["customer_id", "as_of_date", "list_length"])
    logged = pd.concat([part_logged for part_logged, _ in parts], ignore_index=True)
    return logged, pd.concat([part_visits for _, part_visits in parts], ignore_index=True)


def _row(estimator: str, estimate: Estimate, window: tuple[object, object]) -> dict[str, object]:
    return {"estimator": estimator, "window_start": window[0], "window_end": window[1], **estimate.__dict__}


def estimate_rows(
    logged: pd.DataFrame, visits: pd.DataFrame, online: pd.DataFrame, config: OffPolicyConfig
) -> tuple[list[dict[str, object]], list[str]]:
    """The estimate rows (without their run date and model) and notes on the rows left out: IPS,
    SNIPS and the logging policy's rate over the logged visits; the online rate of `online`
    (customer_id, shown_date, label: the impressions of the treatment's served lists)."""
    rows, notes = [], []
    if visits.empty:
        notes.append("no logged visits in the window: no stochastically logged, labelled impressions")
    else:
        window = (visits["as_of_date"].min(), visits["as_of_date"].max())
        outcomes = logged_outcomes(logged, visits)
        rows += [_row(name, estimate, window) for name, estimate in ips_estimates(outcomes, config).items()]
        logging_rate = on_policy_rate(outcomes.customer, outcomes.reward, len(visits), config)
        rows.append(_row("logging_policy", logging_rate, window))
    if online.empty:
        notes.append("no labelled impressions of treatment's served lists: `offerrank simulate` gives an online result")
    else:
        online_visits = len(online.drop_duplicates(["customer_id", "shown_date"]))
        rate = on_policy_rate(online["customer_id"].to_numpy(), online["label"].to_numpy(), online_visits, config)
        rows.append(_row("online_treatment", rate, (online["shown_date"].min(), online["shown_date"].max())))
    return rows, notes


@dataclass(frozen=True)
class OfflineEvaluation:
    """What `evaluate_offline` wrote: the estimate rows (ESTIMATE_COLUMNS), and why some are missing."""

    estimates: pd.DataFrame
    notes: list[str]


def evaluate_offline(stage: StageRun) -> OfflineEvaluation:
    """Estimate the champion's redemption rate per impression on the logged visits of the
    off-policy window (fct_logged_visit_candidates, built by the dbt selector `off_policy`), next to
    the logging policy's own rate there and the online rate of treatment's served lists; replace
    those rows of ml.off_policy_estimates in one transaction. Candidates stream in chunks of whole
    customers, as scoring does."""
    settings, config = stage.settings, stage.settings.off_policy
    with data.connect(settings) as reader, data.connect(settings) as writer:
        data.ensure_ml_tables(writer, stage.schema, settings.reader_role)
        as_of = pipeline.run_date(reader, stage.manifest)
        with data.recorded_stage(writer, stage.schema, stage.run_id, "off_policy", as_of) as log:
            champion = pipeline.load_champion(reader, stage)
            if champion.scorer is None:
                why = champion.problem or "no model has been promoted"
                raise LookupError(f"no champion to evaluate ({why}): run `offerrank run` first")
            logged, visits = _champion_outcomes(reader, stage, champion.scorer)
            online = data.served_outcomes(
                reader, stage.schema, stage.manifest.relation(SERVED_IMPRESSIONS_MODEL), "treatment"
            )
            rows, notes = estimate_rows(logged, visits, online, config)
            record = champion.scorer.record
            # labels of the window that trained or tuned the model: its lists can echo them
            overlaps = not visits.empty and visits["as_of_date"].min() <= (
                record.tune_end_date or record.train_end_date
            )
            estimates = (
                pd.DataFrame(rows)
                .assign(
                    as_of_date=as_of,
                    model_id=champion.model_id,
                    confidence=config.confidence,
                    bootstrap_samples=config.bootstrap_samples,
                    overlaps_training=bool(overlaps),
                )
                .reindex(columns=ESTIMATE_COLUMNS)
            )
            log.counts["rows_written"] = data.replace_off_policy_estimates(writer, stage.schema, estimates)
            log.message = "; ".join([*(f"{row.estimator} {row.value:.4f}" for row in estimates.itertuples()), *notes])
    return OfflineEvaluation(estimates, notes)
