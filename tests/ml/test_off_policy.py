"""The off-policy estimators (ml/off_policy.py) against independent computations and the
generator's truth: arithmetic, the logging policy evaluating itself, and the unbiasedness of IPS
for a fixed policy on a generated world."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml import generate
from ml.config import OffPolicyConfig
from ml.off_policy import LoggedOutcomes, estimate_rows, ips_estimates, logged_outcomes, on_policy_rate

CONFIG = OffPolicyConfig(bootstrap_samples=400, seed=3)


def _hand_made() -> LoggedOutcomes:
    """Three customers, four visits, six logged impressions; the target lists hold four of them."""
    return LoggedOutcomes(
        customer=np.array([1, 1, 2, 2, 3, 3]),
        reward=np.array([1, 0, 1, 1, 0, 0]),
        weight=np.array([1 / 0.5, 0.0, 1 / 0.25, 1 / 0.8, 0.0, 1 / 0.1]),
        visit_customer=np.array([1, 2, 2, 3]),
        list_length=np.array([2, 2, 1, 2]),
    )


def test_ips_and_snips_match_their_formulas():
    outcomes = _hand_made()
    w, r = outcomes.weight, outcomes.reward
    estimates = ips_estimates(outcomes, CONFIG)
    assert estimates["ips"].value == pytest.approx((w * r).sum() / outcomes.list_length.sum())
    assert estimates["ips"].value == pytest.approx((2 + 4 + 1.25) / 7)
    # SNIPS: the weighted mean of the labels of the matched impressions, weights 1/propensity
    assert estimates["snips"].value == pytest.approx(np.average(r, weights=w))
    assert estimates["snips"].value == pytest.approx((2 + 4 + 1.25) / (2 + 4 + 1.25 + 10))
    for estimate in estimates.values():
        assert estimate.visits == 4 and estimate.logged_impressions == 6
        assert estimate.matched_impressions == 4 and estimate.policy_impressions == 7
        assert estimate.effective_sample_size == pytest.approx(w.sum() ** 2 / (w**2).sum())
        assert estimate.ci_low <= estimate.value <= estimate.ci_high


def test_the_bootstrap_resamples_customers_reproducibly():
    outcomes = _hand_made()
    first, again = ips_estimates(outcomes, CONFIG), ips_estimates(outcomes, CONFIG)
    assert first == again

    # An independent cluster bootstrap: customers drawn with replacement, their sums added.
    w, r, c = outcomes.weight, outcomes.reward, outcomes.customer
    customers = np.array([1, 2, 3])
    numerator = np.array([(w * r)[c == k].sum() for k in customers])
    lengths = np.array([outcomes.list_length[outcomes.visit_customer == k].sum() for k in customers])
    rng = np.random.default_rng(CONFIG.seed)
    replicates = []
    for _ in range(CONFIG.bootstrap_samples):
        drawn = rng.integers(0, 3, 3)
        replicates.append(numerator[drawn].sum() / lengths[drawn].sum())
    assert (first["ips"].ci_low, first["ips"].ci_high) == pytest.approx(tuple(np.quantile(replicates, [0.025, 0.975])))


def test_intervals_agree_with_scipys_percentile_bootstrap():
    rng = np.random.default_rng(0)
    customers = 300
    customer = np.repeat(np.arange(customers), rng.integers(1, 6, customers))
    propensity = rng.uniform(0.05, 0.9, len(customer))
    listed = rng.random(len(customer)) < 0.5
    reward = (rng.random(len(customer)) < 0.2).astype(int)
    outcomes = LoggedOutcomes(customer, reward, listed / propensity, np.arange(customers), np.full(customers, 3))
    config = OffPolicyConfig(bootstrap_samples=2000, seed=1)
    estimate = ips_estimates(outcomes, config)["snips"]
    weighted = np.bincount(customer, weights=reward * listed / propensity)
    weights = np.bincount(customer, weights=listed / propensity)
    reference = stats.bootstrap(
        (weighted, weights),
        lambda a, b: a.sum() / b.sum(),
        paired=True,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(9),
    ).confidence_interval
    width = reference.high - reference.low
    other = ips_estimates(outcomes, dataclasses.replace(config, seed=2))["snips"]
    assert (other.ci_low, other.ci_high) != (estimate.ci_low, estimate.ci_high)  # the seed decides the resamples
    assert estimate.ci_low == pytest.approx(reference.low, abs=0.1 * width)
    assert estimate.ci_high == pytest.approx(reference.high, abs=0.1 * width)


def test_logged_pairs_become_one_entry_per_impression():
    logged = pd.DataFrame(
        {
            "customer_id": [5, 5, 6],
            "as_of_date": pd.to_datetime(["2026-06-01"] * 3).date,
            "logged_impressions": [1, 2, 1],
            "redeemed_impressions": [0, 1, 1],
            "propensity": [0.5, 0.25, 0.2],
            "is_listed": [True, True, False],
        }
    )
    visits = pd.DataFrame({"customer_id": [5, 6], "as_of_date": logged["as_of_date"][:2], "list_length": [3, 2]})
    outcomes = logged_outcomes(logged, visits)
    assert outcomes.customer.tolist() == [5, 5, 5, 6]
    assert outcomes.reward.tolist() == [0, 1, 0, 1]
    assert outcomes.weight.tolist() == [2.0, 4.0, 4.0, 0.0]
    assert outcomes.list_length.tolist() == [3, 2]


def test_estimate_rows_say_what_is_missing():
    empty_logged = pd.DataFrame(columns=["customer_id", "as_of_date", "logged_impressions", "redeemed_impressions",
                                         "propensity", "is_listed"])  # fmt: skip
    empty_visits = pd.DataFrame(columns=["customer_id", "as_of_date", "list_length"])
    online = pd.DataFrame({"customer_id": [1, 1, 2], "shown_date": pd.to_datetime(["2026-07-02"] * 3).date,
                           "label": [1, 0, 0]})  # fmt: skip
    rows, notes = estimate_rows(empty_logged, empty_visits, online, CONFIG)
    assert [row["estimator"] for row in rows] == ["online_treatment"]
    assert rows[0]["value"] == pytest.approx(1 / 3) and rows[0]["visits"] == 2
    assert notes == ["no logged visits in the window: no stochastically logged, labelled impressions"]


# --- against the generator ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoggedWorld:
    """A generated world's visits with every eligible offer: its propensity, whether it was shown
    (with its drawn label), and its true expected redemption probability."""

    visits: pd.DataFrame  # one row per (visit, eligible offer)


GAUSS_HERMITE = np.polynomial.hermite_e.hermegauss(40)


def _expected_probability(logit: np.ndarray, noise_sd: float) -> np.ndarray:
    """E[sigmoid(logit + e)], e ~ Normal(0, noise_sd): the truth of an offer before its noise draw."""
    nodes, weights = GAUSS_HERMITE
    values = 1 / (1 + np.exp(-(logit[:, None] + noise_sd * nodes[None, :])))
    return values @ weights / weights.sum()


@pytest.fixture(scope="module")
def logged_world() -> LoggedWorld:
    world = generate.simulate(generate.GeneratorParams(customers=3000, products=120, offers=40, days=30, seed=5))
    impressions, offers, customers = world.impressions, world.offers, world.customers
    visits = pd.DataFrame({"customer": impressions.customer, "day": impressions.day}).drop_duplicates()
    visits["business_type"] = customers.business_type[visits["customer"].to_numpy()]
    # each day's eligible offers and their propensities, per business type, as the logging policy drew them
    eligible = []
    for day in np.unique(visits["day"]):
        active = np.flatnonzero((offers.start_day <= day) & (offers.end_day >= day))
        for business_type in range(len(generate.BUSINESS_TYPES)):
            q = generate.inclusion_probabilities(offers, active, business_type, generate.LOGGING_POLICY)
            propensity = generate.propensities(q[q > 0])
            eligible.append(pd.DataFrame({"day": day, "business_type": business_type, "offer": active[q > 0],
                                          "propensity": propensity}))  # fmt: skip
    pairs = visits.merge(pd.concat(eligible, ignore_index=True), on=["day", "business_type"])
    # every eligible pair's true drivers, as the generator computes them for impressions
    as_impressions = generate.Impressions(
        pairs["customer"].to_numpy(), pairs["offer"].to_numpy(), pairs["day"].to_numpy(),
        np.zeros(len(pairs), dtype=np.int64), pairs["propensity"].to_numpy(),
    )  # fmt: skip
    features = generate.impression_features(
        customers, world.products, world.orders, offers, as_impressions, world.calendar, generate.REDEMPTION_MODEL
    )
    logit = generate.redemption_logit(features, generate.REDEMPTION_MODEL)
    pairs["truth"] = _expected_probability(logit, generate.REDEMPTION_MODEL.noise_sd)
    pairs["depth"] = offers.discount_depth[pairs["offer"].to_numpy()]
    # the logged impressions, with a label drawn from each one's own true probability (noise included)
    rng = np.random.default_rng(17)
    shown = pd.DataFrame(
        {
            "customer": impressions.customer,
            "day": impressions.day,
            "offer": impressions.offer,
            "logged_propensity": impressions.propensity,
            "reward": (rng.random(len(impressions.customer)) < world.redemption_probability).astype(int),
        }
    )
    return LoggedWorld(pairs.merge(shown, on=["customer", "day", "offer"], how="left", validate="one_to_one"))


def test_the_reconstructed_propensities_are_the_logged_ones(logged_world):
    visits = logged_world.visits
    shown = visits.dropna(subset=["logged_propensity"])
    assert len(shown) > 5000
    np.testing.assert_allclose(shown["propensity"], shown["logged_propensity"], rtol=1e-9)


def _outcomes(visits: pd.DataFrame, target: np.ndarray) -> LoggedOutcomes:
    """LoggedOutcomes of the target policy's showing probabilities per (visit, eligible offer)."""
    visit_id = visits.groupby(["customer", "day"], sort=False).ngroup().to_numpy()
    shown = visits["reward"].notna().to_numpy()
    list_length = np.bincount(visit_id, weights=target)
    first = np.unique(visit_id, return_index=True)[1]
    return LoggedOutcomes(
        customer=visits["customer"].to_numpy()[shown],
        reward=visits["reward"].to_numpy()[shown].astype(int),
        weight=(target / visits["propensity"].to_numpy())[shown],
        visit_customer=visits["customer"].to_numpy()[first],
        list_length=list_length,
    )


def test_the_logging_policy_evaluating_itself(logged_world):
    """Target = the logging policy (target probability = propensity, weight 1): SNIPS is exactly the
    on-policy mean, and IPS, whose denominator is the expected list length, is within its interval."""
    visits = logged_world.visits
    outcomes = _outcomes(visits, visits["propensity"].to_numpy())
    estimates = ips_estimates(outcomes, CONFIG)
    on_policy = on_policy_rate(outcomes.customer, outcomes.reward, len(outcomes.visit_customer), CONFIG)
    assert estimates["snips"].value == on_policy.value  # exactly: every weight is 1
    assert estimates["snips"].effective_sample_size == pytest.approx(len(outcomes.reward))
    assert estimates["ips"].ci_low <= on_policy.value <= estimates["ips"].ci_high
    assert estimates["ips"].value == pytest.approx(on_policy.value, rel=0.05)


def test_ips_and_snips_recover_a_fixed_policys_true_rate(logged_world):
    """A fixed policy, each visit's 2 deepest discounts (ties by offer): its true rate per impression,
    the mean true probability of the offers it would show, lies within both intervals; the logged
    impressions' own mean does not estimate it."""
    visits = logged_world.visits.sort_values(["customer", "day", "depth", "offer"], ascending=[True, True, False, True])
    in_list = (visits.groupby(["customer", "day"]).cumcount() < 2).to_numpy()
    truth = visits.loc[in_list, "truth"].mean()
    outcomes = _outcomes(visits, in_list.astype(float))
    estimates = ips_estimates(outcomes, CONFIG)
    for name in ("ips", "snips"):
        assert estimates[name].ci_low <= truth <= estimates[name].ci_high, (name, estimates[name], truth)
        assert estimates[name].value == pytest.approx(truth, rel=0.15)
    assert estimates["ips"].policy_impressions == in_list.sum()
    # the logging policy favours deep discounts, which also raise redemption: its own mean is
    # another policy's rate, here above this one's truth
    logged_mean = on_policy_rate(outcomes.customer, outcomes.reward, len(outcomes.visit_customer), CONFIG)
    assert truth < logged_mean.ci_low
