"""The closed loop's day, as pure functions on a small world with hand-made recommendations."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml import closed_loop
from ml.closed_loop import LoopState, SimulatedDay, simulate_day
from ml.generate import OFFER_PLANNED_AHEAD_DAYS, GeneratorParams, World, simulate

SMALL = GeneratorParams(customers=300, products=40, offers=20, days=45, seed=7)
FIRST_DAY = SMALL.end_date + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def world() -> World:
    return simulate(SMALL)


def _recommend(world: World, date: dt.date, per_customer: int = 3, min_days_left: int = 0) -> pd.DataFrame:
    """Every customer's first `per_customer` offers active on `date` (and for `min_days_left` more
    days), ranked in reverse offer order so that rank order is not id order."""
    day = closed_loop.day_index(world, date)
    _, offers = closed_loop.world_through(world, day)
    active = np.flatnonzero((offers.start_day <= day) & (offers.end_day >= day + min_days_left))[::-1][:per_customer]
    assert len(active) > 0
    customers = np.arange(len(world.customers.business_type))
    return pd.DataFrame(
        {
            "customer_id": np.repeat(customers, len(active)) + 1,
            "offer_id": np.tile(active, len(customers)) + 1,
            "rank": np.tile(np.arange(1, len(active) + 1), len(customers)),
        }
    )


def _start_state(world: World, served: pd.DataFrame, history: bool = True) -> LoopState:
    """The state right after `offerrank generate` (with `history`: its redemptions and pending
    ones; without: none), serving `served`."""
    counts = {
        "orders": len(world.orders.customer),
        "offers": len(world.offers.kind),
        "impressions": len(world.impressions.customer),
        "redemptions": len(world.redemptions.customer),
        "interaction_events": len(world.events.impression),
    }
    redeemed = pd.DataFrame({"customer_id": world.redemptions.customer + 1, "offer_id": world.redemptions.offer + 1})
    pending = closed_loop.initial_truth(world)["pending_redemptions"]
    if not history:
        redeemed, pending = redeemed.iloc[:0], pending.iloc[:0]
    return closed_loop.loop_state({"served": served, "redeemed": redeemed, "pending": pending}, counts)


def _advance(state: LoopState, simulated: SimulatedDay, served: pd.DataFrame) -> LoopState:
    """The state after `simulated` was appended, serving `served` next."""
    raw = simulated.raw
    counts = {
        table: state.row_counts[table] + len(raw[table])
        for table in ("orders", "offers", "impressions", "redemptions", "interaction_events")
    }
    redeemed = pd.DataFrame(
        {
            "customer_id": np.concatenate([state.redeemed_customer + 1, raw["redemptions"]["customer_id"]]),
            "offer_id": np.concatenate([state.redeemed_offer + 1, raw["redemptions"]["offer_id"]]),
        }
    )
    frames = {"served": served, "redeemed": redeemed, "pending": simulated.pending_redemptions}
    return closed_loop.loop_state(frames, counts)


def test_impressions_are_the_visitors_recommendations_in_rank_order(world):
    served = _recommend(world, FIRST_DAY)
    simulated = simulate_day(world, FIRST_DAY, _start_state(world, served))
    impressions = simulated.raw["impressions"]
    visiting = (
        closed_loop.day_streams(SMALL.seed, closed_loop.day_index(world, FIRST_DAY))[closed_loop.VISITS].random(
            SMALL.customers
        )
        < world.customers.visit_probability
    )
    assert set(impressions["customer_id"]) == set(np.flatnonzero(visiting) + 1)  # everyone here has a list
    shown = impressions.merge(served, on=["customer_id", "offer_id"], how="left", validate="one_to_one")
    assert shown["rank"].notna().all()
    in_time_order = shown.sort_values(["customer_id", "shown_at"])
    assert (in_time_order.groupby("customer_id")["rank"].diff().dropna() == 1).all()
    assert (in_time_order.groupby("customer_id")["shown_at"].diff().dropna() == pd.Timedelta(seconds=7)).all()
    assert (shown["shown_at"].dt.date == FIRST_DAY).all() and (shown["propensity"] == 1.0).all()
    assert impressions["impression_id"].tolist() == list(
        range(len(world.impressions.customer) + 1, len(world.impressions.customer) + len(impressions) + 1)
    )
    assert simulated.impression_outcomes["impression_id"].tolist() == impressions["impression_id"].tolist()


def test_only_recommended_customers_see_offers(world):
    served = _recommend(world, FIRST_DAY)
    served = served[served["customer_id"] % 2 == 0]
    impressions = simulate_day(world, FIRST_DAY, _start_state(world, served)).raw["impressions"]
    assert len(impressions) > 0 and (impressions["customer_id"] % 2 == 0).all()


def test_redemptions_are_of_shown_offers_and_never_before_their_impression(world):
    served = _recommend(world, FIRST_DAY)
    state = _start_state(world, served, history=False)
    shown_at: dict[tuple[int, int], pd.Timestamp] = {}
    date = FIRST_DAY
    for _ in range(4):
        simulated = simulate_day(world, date, state)
        impressions = simulated.raw["impressions"]
        for customer, offer, at in impressions[["customer_id", "offer_id", "shown_at"]].itertuples(index=False):
            shown_at.setdefault((customer, offer), at)  # the pair's first impression
        for frame, column in (
            (simulated.raw["redemptions"], "redeemed_at"),
            (simulated.pending_redemptions, "redeemed_at"),
        ):
            pairs = list(zip(frame["customer_id"], frame["offer_id"], strict=True))
            assert all(pair in shown_at for pair in pairs)
            assert all(
                at >= shown_at[pair] + pd.Timedelta(seconds=60) for pair, at in zip(pairs, frame[column], strict=True)
            )
        released = simulated.raw["redemptions"]
        assert (released["redeemed_at"].dt.date == simulated.date).all()
        assert not released.duplicated(["customer_id", "offer_id"]).any()
        date += dt.timedelta(days=1)
        state = _advance(state, simulated, _recommend(world, date))
    redeemed = pd.DataFrame({"c": state.redeemed_customer, "o": state.redeemed_offer})
    assert len(redeemed) > 0 and not redeemed.duplicated().any()  # at most once per customer and offer


def test_redemption_frequency_matches_the_true_probability(world):
    # Offers with 15 days left: no redemption is cut at the offer's end, so each impression's
    # (customer, offer) pair is redeemed with its true probability.
    served = _recommend(world, FIRST_DAY, per_customer=4, min_days_left=15)
    state = _start_state(world, served, history=False)
    redeemed, expected, variance = 0, 0.0, 0.0
    for seed in range(40):
        reseeded = dataclasses.replace(world, params=dataclasses.replace(SMALL, seed=1000 + seed))
        simulated = simulate_day(reseeded, FIRST_DAY, state)
        p = simulated.impression_outcomes["true_probability"].to_numpy()
        label = simulated.impression_outcomes["label_probability"].to_numpy()
        # nothing pending or redeemed: the label needs the own draw and its delay inside the window
        assert ((label > 0) & (label < p)).all()
        redeemed += len(simulated.raw["redemptions"]) + len(simulated.pending_redemptions)
        expected += p.sum()
        variance += (p * (1 - p)).sum()
    assert expected > 200
    assert abs(redeemed - expected) < 4 * np.sqrt(variance)


def test_the_same_seed_and_day_give_the_same_rows(world):
    served = _recommend(world, FIRST_DAY)
    first = simulate_day(world, FIRST_DAY, _start_state(world, served))
    again = simulate_day(world, FIRST_DAY, _start_state(world, served))
    for table, frame in first.raw.items():
        pd.testing.assert_frame_equal(frame, again.raw[table])
    pd.testing.assert_frame_equal(first.impression_outcomes, again.impression_outcomes)
    pd.testing.assert_frame_equal(first.pending_redemptions, again.pending_redemptions)
    other = dataclasses.replace(world, params=dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert (
        not simulate_day(other, FIRST_DAY, _start_state(world, served))
        .raw["impressions"]
        .equals(first.raw["impressions"])
    )


NOBODY = pd.DataFrame({"customer_id": [], "offer_id": [], "rank": []}, dtype="int64")  # no recommendations


def test_pending_redemptions_come_on_their_day_and_new_offers_start_ahead(world):
    state = _start_state(world, NOBODY)  # nobody is served: only the history's redemptions come
    history_pending = closed_loop.initial_truth(world)["pending_redemptions"]
    assert len(history_pending) > 0
    assert (history_pending["redeemed_at"].dt.date > SMALL.end_date).all()
    released, new_offers = [], []
    date = FIRST_DAY
    for _ in range(15):
        simulated = simulate_day(world, date, state)
        day_rows, offers = simulated.raw["redemptions"], simulated.raw["offers"]
        assert (day_rows["redeemed_at"].dt.date == date).all()
        assert (simulated.pending_redemptions["redeemed_at"].dt.date > date).all()
        assert (offers["starts_on"] == date + dt.timedelta(days=OFFER_PLANNED_AHEAD_DAYS)).all()
        released.append(day_rows)
        new_offers.append(offers)
        date += dt.timedelta(days=1)
        state = _advance(state, simulated, NOBODY)
    released = pd.concat(released, ignore_index=True)
    assert len(state.pending.customer) == 0  # every delay is at most 14 days
    expected = history_pending.sort_values("redeemed_at")[["customer_id", "offer_id", "redeemed_at"]]
    pd.testing.assert_frame_equal(
        released[["customer_id", "offer_id", "redeemed_at"]].reset_index(drop=True), expected.reset_index(drop=True)
    )
    assert released["redemption_id"].tolist() == list(
        range(len(world.redemptions.customer) + 1, len(world.redemptions.customer) + len(released) + 1)
    )
    # the generator's rate, 20 offers over 45 + 28 days: about 4 in 15 days
    new_offers = pd.concat(new_offers, ignore_index=True)
    assert 1 <= len(new_offers) <= 10
    assert new_offers["offer_id"].tolist() == list(range(SMALL.offers + 1, SMALL.offers + len(new_offers) + 1))


def test_a_warehouse_that_does_not_match_the_world_is_refused(world):
    state = _start_state(world, _recommend(world, FIRST_DAY))
    wrong = dataclasses.replace(state, row_counts={**state.row_counts, "offers": SMALL.offers + 5})
    with pytest.raises(ValueError, match="offers"):
        simulate_day(world, FIRST_DAY, wrong)
    with pytest.raises(ValueError, match="inside the generated history"):
        simulate_day(world, SMALL.end_date, state)
