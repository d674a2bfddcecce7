"""The closed loop: the simulated world lives on after `offerrank generate`, one day at a time,
and each day the pipeline's recommendations are what its customers see.

Pure functions, no warehouse I/O (ml/data.py does that). The world's latent state is regenerated
from the generator's parameters (`simulate(params)`), and every simulated day draws from streams
of its own, derived from (seed, day): a day's orders and new offers depend on nothing but the
parameters, and its impressions, redemptions and events on the parameters, the day's
recommendations and the redemptions already drawn. So a day simulated again from the same
warehouse state gives the same rows. See docs/simulator.md, "The closed loop".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.generate import (
    EVENT_MODEL,
    IMPRESSION_GAP_S,
    LABEL_WINDOW_DAYS,
    NOT_REDEEMED,
    OFFER_LEAD_DAYS,
    OFFER_PLANNED_AHEAD_DAYS,
    REDEMPTION_MODEL,
    SECONDS_PER_DAY,
    Calendar,
    EventModel,
    GeneratorParams,
    Impressions,
    Offers,
    Orders,
    RedemptionModel,
    Redemptions,
    World,
    _timestamps,
    _truncated_exponential_cdf,
    draw_redemption_times,
    first_redemptions,
    impression_features,
    plan_offers,
    redemption_cut_s,
    select_redemptions,
    session_seconds,
    simulate,
    simulate_events,
    simulate_orders,
    to_frames,
    true_probability,
    truth_tables,
)

# Mixed into every day's seed, so that no day stream is one that `simulate` uses.
_CLOSED_LOOP_KEY = 0x6C6F6F70  # "loop"
ORDERS, OFFERS, VISITS, REDEMPTIONS, EVENTS = range(5)  # the streams of a day


def day_streams(seed: int, day: int) -> list[np.random.Generator]:
    """The independent random streams of simulated day `day` (a day index of the world's calendar)."""
    return np.random.default_rng(np.random.SeedSequence([seed, _CLOSED_LOOP_KEY, day])).spawn(5)


def day_index(world: World, date: dt.date) -> int:
    """The day index of `date` in the world's calendar (day 0 is the history's first day)."""
    return (date - world.calendar.start_date).days


def params_row(params: GeneratorParams) -> pd.DataFrame:
    """truth.generator_params: the one row the closed loop regenerates the world from."""
    return pd.DataFrame([dataclasses.asdict(params)])


def generated_tables(params: GeneratorParams) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """What `offerrank generate` loads: the world's raw tables, and its truth tables with the
    closed loop's start (`initial_truth`)."""
    world = simulate(params)
    return to_frames(world), truth_tables(world) | initial_truth(world)


def initial_truth(world: World) -> dict[str, pd.DataFrame]:
    """The closed loop's truth tables as `offerrank generate` leaves them: its parameters, the
    history's redemptions that are due after its end, and no simulated day yet."""
    return {
        "generator_params": params_row(world.params),
        "pending_redemptions": pending_frame(world.pending_redemptions, world.pending_redemptions.impression + 1),
        "simulated_days": pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in SIMULATED_DAY_COLUMNS.items()}),
    }


SIMULATED_DAY_COLUMNS = {
    "simulated_on": "object",
    "orders": "int64",
    "new_offers": "int64",
    "impressions": "int64",
    "redemptions_released": "int64",
    "redemptions_pending": "int64",
}


# --- what the world did before the day ----------------------------------------------------------


def day_orders(world: World, day: int) -> Orders:
    """Simulated day `day`'s orders, drawn from the customers' latent activity as the generator does."""
    # simulate_orders over a one-day calendar starting on the day, with signup days moved with it
    date = world.calendar.start_date + dt.timedelta(days=day)
    customers = dataclasses.replace(world.customers, signup_day=world.customers.signup_day - day)
    orders = simulate_orders(day_streams(world.params.seed, day)[ORDERS], customers, world.products, Calendar(date, 1))
    return dataclasses.replace(orders, day=orders.day + day)


def day_new_offers(world: World, day: int) -> Offers:
    """The offers planned on simulated day `day`: at the generator's rate (offers per day of its
    planning span), starting as far ahead as the generator plans past its history."""
    rng = day_streams(world.params.seed, day)[OFFERS]
    span = world.params.days + OFFER_LEAD_DAYS + OFFER_PLANNED_AHEAD_DAYS
    start = day + OFFER_PLANNED_AHEAD_DAYS
    count = int(rng.poisson(world.params.offers / span))
    return plan_offers(rng, count, world.products, world.calendar, start_days=(start, start + 1))


def _concat(parts: list[Orders] | list[Offers]) -> Orders | Offers:
    """Dataclasses of arrays one after another, field by field."""
    kind = type(parts[0])
    return kind(
        **{field.name: np.concatenate([getattr(p, field.name) for p in parts]) for field in dataclasses.fields(kind)}
    )


def concat_orders(parts: list[Orders]) -> Orders:
    """Orders one after another, each part's lines pointing at its own orders."""
    offsets = np.cumsum([0] + [len(part.customer) for part in parts[:-1]])
    line_order = np.concatenate([p.line_order + o for p, o in zip(parts, offsets, strict=True)])
    return dataclasses.replace(_concat(parts), line_order=line_order)


def world_through(world: World, day: int) -> tuple[Orders, Offers]:
    """Every order up to and including `day` and every offer planned by then, the history's first."""
    first = world.calendar.days
    orders = concat_orders([world.orders, *(day_orders(world, d) for d in range(first, day + 1))])
    offers = _concat([world.offers, *(day_new_offers(world, d) for d in range(first, day + 1))])
    return orders, offers


# --- one day ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopState:
    """What the warehouse holds that the day's draws depend on, as 0-based indices where they are
    customers and offers (an id minus 1)."""

    served_customer: np.ndarray  # the day's recommendations, any order
    served_offer: np.ndarray
    served_rank: np.ndarray
    redeemed_customer: np.ndarray  # pairs already redeemed in raw: never again
    redeemed_offer: np.ndarray
    pending: Redemptions  # drawn, not yet due; `impression` holds the impression's id
    row_counts: dict[str, int]  # rows (= the largest id) of orders, offers, impressions, redemptions, events


@dataclass(frozen=True)
class SimulatedDay:
    """A simulated day's new rows: raw tables to append, truth rows to append, the pending set."""

    date: dt.date
    raw: dict[str, pd.DataFrame]  # orders, order_items, offers, impressions, redemptions, interaction_events
    impression_outcomes: pd.DataFrame
    pending_redemptions: pd.DataFrame  # every redemption still due after the day (it replaces the old set)
    summary: pd.DataFrame  # the truth.simulated_days row


def serve(world: World, day: int, state: LoopState, visiting: np.ndarray, session_s: np.ndarray) -> Impressions:
    """The impressions of the day: each visiting customer's recommendations in rank order, seconds
    apart from the visit's start. Propensity 1: the served policy is deterministic."""
    keep = visiting[state.served_customer]
    customer, offer, rank = state.served_customer[keep], state.served_offer[keep], state.served_rank[keep]
    by_rank = np.lexsort((rank, customer))
    customer, offer = customer[by_rank], offer[by_rank]
    starts = np.ones(len(customer), dtype=bool)
    starts[1:] = customer[1:] != customer[:-1]
    position = np.arange(len(customer)) - np.maximum.accumulate(np.where(starts, np.arange(len(customer)), 0))
    shown_at_s = world.calendar.start_s + day * SECONDS_PER_DAY + session_s[customer] + IMPRESSION_GAP_S * position
    by_time = np.lexsort((offer, customer, shown_at_s))
    return Impressions(
        customer[by_time], offer[by_time], np.full(len(customer), day), shown_at_s[by_time], np.ones(len(customer))
    )


def settle_redemptions(
    drawn: Redemptions, state: LoopState, n_offers: int, day_end_s: int
) -> tuple[Redemptions, Redemptions, np.ndarray]:
    """(released, still pending, won): the earliest redemption per customer and offer of the
    drawn ones and those pending, leaving out pairs already redeemed; released are those due by
    `day_end_s`. `won` marks the drawn ones that are the pair's redemption."""
    both = Redemptions(
        np.concatenate([state.pending.customer, drawn.customer]),
        np.concatenate([state.pending.offer, drawn.offer]),
        np.concatenate([state.pending.impression, drawn.impression]),
        np.concatenate([state.pending.redeemed_at_s, drawn.redeemed_at_s]),
    )
    is_drawn = np.arange(len(both.customer)) >= len(state.pending.customer)
    pair = both.customer * n_offers + both.offer
    done = np.isin(pair, state.redeemed_customer * n_offers + state.redeemed_offer)
    order = np.lexsort((both.redeemed_at_s, pair))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    chosen = np.sort(order[first & ~done[order]])
    chosen = chosen[np.argsort(both.redeemed_at_s[chosen], kind="stable")]
    due = both.redeemed_at_s[chosen] < day_end_s
    won = np.zeros(len(both.customer), dtype=bool)
    won[chosen] = True
    return select_redemptions(both, chosen[due]), select_redemptions(both, chosen[~due]), won[is_drawn]


def label_probabilities(
    probability: np.ndarray,
    impressions: Impressions,
    offers: Offers,
    calendar: Calendar,
    earlier_due_s: np.ndarray,
    model: RedemptionModel,
) -> np.ndarray:
    """P(the impression's 7-day label is 1) given the world when it is shown: 0 when the pair's
    redemption already came, 1 when one already drawn is due inside the window, else the chance
    that its own draw succeeds and lands in the window (cut at the offer's end; the world goes on).
    Later impressions of the same pair, which the policy has not chosen yet, are not counted."""
    shown = impressions.shown_at_s
    window_end = (
        calendar.start_s
        + (np.minimum(impressions.day + LABEL_WINDOW_DAYS, offers.end_day[impressions.offer]) + 1) * SECONDS_PER_DAY
    )
    lands = _truncated_exponential_cdf(
        (window_end - shown) / SECONDS_PER_DAY, model.mean_delay_days, model.max_delay_days
    )
    own = probability * lands
    return np.where(earlier_due_s < shown, 0.0, np.where(earlier_due_s < window_end, 1.0, own))


def simulate_day(
    world: World,
    date: dt.date,
    state: LoopState,
    model: RedemptionModel = REDEMPTION_MODEL,
    event_model: EventModel = EVENT_MODEL,
) -> SimulatedDay:
    """Draw day `date` of the world after the history: its orders, its new offers, the visits, the
    served recommendations as impressions, redemptions from the true probabilities, and events."""
    day = day_index(world, date)
    if day < world.calendar.days:
        raise ValueError(f"{date} is inside the generated history (up to {world.params.end_date})")
    streams = day_streams(world.params.seed, day)
    orders, offers = world_through(world, day)
    new_offers = day_new_offers(world, day)
    today = day_orders(world, day)
    if state.row_counts["offers"] != len(offers.kind) - len(new_offers.kind):
        raise ValueError(
            f"the warehouse has {state.row_counts['offers']} offers, the regenerated world"
            f" {len(offers.kind) - len(new_offers.kind)} before {date}: raw was changed after `offerrank generate`"
        )
    calendar = Calendar(world.calendar.start_date, day + 1)

    n_customers = len(world.customers.business_type)
    visiting = streams[VISITS].random(n_customers) < world.customers.visit_probability
    impressions = serve(world, day, state, visiting, session_seconds(streams[VISITS], n_customers))
    features = impression_features(world.customers, world.products, orders, offers, impressions, calendar, model)
    probability = true_probability(streams[REDEMPTIONS], features, model)
    redeemed_at_s = draw_redemption_times(streams[REDEMPTIONS], probability, impressions.shown_at_s, model)
    drawn = first_redemptions(
        redeemed_at_s, impressions, offers, redemption_cut_s(impressions, offers, calendar, False)
    )

    first_id = state.row_counts["impressions"] + 1
    drawn_ids = dataclasses.replace(drawn, impression=drawn.impression + first_id)
    day_end_s = calendar.start_s + (day + 1) * SECONDS_PER_DAY
    released, pending, won = settle_redemptions(drawn_ids, state, len(offers.kind), day_end_s)
    # events: clicks come before the impression's redemption, whenever it is due
    own = select_redemptions(drawn, won)
    events = simulate_events(streams[EVENTS], probability, impressions, own, event_model)

    earlier = _earlier_due_s(impressions, state, len(offers.kind))
    label = label_probabilities(probability, impressions, offers, calendar, earlier, model)
    day_world = dataclasses.replace(
        world,
        calendar=calendar,
        orders=today,
        offers=new_offers,
        impressions=impressions,
        features=features,
        redemption_probability=probability,
        label_probability=label,
        redemptions=released,
        events=events,
    )
    raw = _shift_ids(to_frames(day_world), state.row_counts)
    outcomes = truth_tables(day_world)["impression_outcomes"]
    outcomes["impression_id"] += state.row_counts["impressions"]
    summary = pd.DataFrame(
        {
            "simulated_on": [date],
            "orders": [len(raw["orders"])],
            "new_offers": [len(raw["offers"])],
            "impressions": [len(raw["impressions"])],
            "redemptions_released": [len(raw["redemptions"])],
            "redemptions_pending": [len(pending.customer)],
        }
    )
    return SimulatedDay(date, raw, outcomes, pending_frame(pending, pending.impression), summary)


def _earlier_due_s(impressions: Impressions, state: LoopState, n_offers: int) -> np.ndarray:
    """Per impression, when the pair's redemption is due if it was drawn before: 0 for pairs
    redeemed in raw (long past), the pending one's time (one per pair at most), else NOT_REDEEMED."""
    pair = impressions.customer * n_offers + impressions.offer
    pending_pair = state.pending.customer * n_offers + state.pending.offer
    order = np.argsort(pending_pair)
    at = np.minimum(np.searchsorted(pending_pair[order], pair), max(len(order) - 1, 0))
    found = (pending_pair[order][at] == pair) if len(order) else np.zeros(len(pair), dtype=bool)
    due = np.where(found, state.pending.redeemed_at_s[order][at] if len(order) else 0, NOT_REDEEMED)
    return np.where(np.isin(pair, state.redeemed_customer * n_offers + state.redeemed_offer), 0, due)


# The id columns of the raw frames and the table whose rows they count; a day's frames number
# from 1 and move past the rows already in the warehouse.
_ID_COLUMNS = {
    "orders": {"order_id": "orders"},
    "order_items": {"order_id": "orders"},
    "offers": {"offer_id": "offers"},
    "impressions": {"impression_id": "impressions"},
    "redemptions": {"redemption_id": "redemptions"},
    "interaction_events": {"event_id": "interaction_events", "impression_id": "impressions"},
}


def _shift_ids(frames: dict[str, pd.DataFrame], row_counts: dict[str, int]) -> dict[str, pd.DataFrame]:
    shifted = {}
    for table, columns in _ID_COLUMNS.items():
        frame = frames[table]
        for column, counted in columns.items():
            frame[column] = frame[column] + row_counts[counted]
        shifted[table] = frame
    return shifted


def pending_frame(pending: Redemptions, impression_id: np.ndarray) -> pd.DataFrame:
    """truth.pending_redemptions rows: redemptions drawn but not yet due."""
    return pd.DataFrame(
        {
            "customer_id": pending.customer.astype(np.int64) + 1,
            "offer_id": pending.offer.astype(np.int64) + 1,
            "impression_id": impression_id.astype(np.int64),
            "redeemed_at": _timestamps(pending.redeemed_at_s),
        }
    )


def pending_from_frame(frame: pd.DataFrame) -> Redemptions:
    """The inverse of `pending_frame`: `impression` holds the impression's id."""
    seconds = (pd.to_datetime(frame["redeemed_at"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return Redemptions(
        frame["customer_id"].to_numpy(np.int64) - 1,
        frame["offer_id"].to_numpy(np.int64) - 1,
        frame["impression_id"].to_numpy(np.int64),
        seconds.to_numpy(np.int64),
    )


def loop_state(frames: dict[str, pd.DataFrame], row_counts: dict[str, int]) -> LoopState:
    """The LoopState of `data.read_loop_state`'s frames and `data.raw_row_counts`."""
    served, redeemed = frames["served"], frames["redeemed"]
    return LoopState(
        served_customer=served["customer_id"].to_numpy(np.int64) - 1,
        served_offer=served["offer_id"].to_numpy(np.int64) - 1,
        served_rank=served["rank"].to_numpy(np.int64),
        redeemed_customer=redeemed["customer_id"].to_numpy(np.int64) - 1,
        redeemed_offer=redeemed["offer_id"].to_numpy(np.int64) - 1,
        pending=pending_from_frame(frames["pending"]),
        row_counts=row_counts,
    )
