"""Simulated retail data with known ground truth for offerrank.

`generate_dataset(GeneratorParams())` returns one DataFrame per raw table of the raw data contract,
keyed in load order (customers, products, orders, order_items, offers, impressions, redemptions,
interaction_events), with the contract's columns in its order. `truth_tables(world)` returns the
tables of schema `truth` (`impression_outcomes`: each impression's true redemption probability);
`generate_all(params)` gives both from one simulation, and `simulate()` the world before it becomes
frames, latent variables included.

It is a pure function of its parameters: every draw comes from `numpy.random.default_rng(seed)`,
split into one child stream per stage, so a seed always gives the same frames. The world (customers'
latent traits, the logging policy and its propensities, the true redemption model, the event model,
delays) is described in docs/simulator.md; the coefficients live in `RedemptionModel`,
`LoggingPolicy` and `EventModel`.

Types of the frames: ids are int64 (1-based), except `offers.product_id` (nullable `Int64`).
`price_tier` is int16, `line_number` and `quantity` int32. Strings are pandas `str`, missing ones
NaN. Money is float64 rounded to 2 decimals, nullable `Float64` where it may be missing
(`discount_pct`, `reward_amount`, `min_spend`); `margin_impact` is rounded to 4; `propensity` and
`true_probability` are unrounded float64. Timestamps (`*_at`) are `datetime64[ns, UTC]` on whole
seconds. Date columns (`signup_date`, `starts_on`, `ends_on`) are `object` columns of
`datetime.date`: pyarrow turns them into date32 and CSV writers write them as `YYYY-MM-DD`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class GeneratorParams:
    """How much data to generate, over which days, from which seed."""

    customers: int = 2000
    products: int = 300
    offers: int = 80
    days: int = 120
    seed: int = 42
    end_date: dt.date = dt.date(2026, 6, 30)  # last day of the data (inclusive)

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days < 1 or self.offers < 0:
            raise ValueError("customers and days must be at least 1, offers at least 0")
        if self.products < len(CATEGORIES):
            raise ValueError(f"products must be at least {len(CATEGORIES)}: one per category")


# --- the world's fixed shape -----------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessType:
    name: str
    share: float  # share of customers
    orders_per_day: float  # median activity rate (lognormal)
    basket_extra_lines: float  # Poisson mean of order lines beyond the first
    quantity_extra: float  # Poisson mean of units per line beyond the first
    weekday_weights: tuple[float, ...]  # Monday..Sunday, relative order intensity
    order_hour: float  # mean UTC hour of ordering
    price_sensitivity_beta: tuple[float, float]
    category_tilt: tuple[tuple[str, float], ...] = ()  # multiplies the Dirichlet base weights


@dataclass(frozen=True)
class Category:
    name: str
    share: float  # share of the assortment and base weight of customer preferences
    base_price: float  # median tier-1 list price
    fresh_share: float  # probability that a product of the category is fresh
    margin: float  # mean gross margin rate
    department: str  # the level above the category


@dataclass(frozen=True)
class RedemptionModel:
    """Coefficients of the true p(redeem | customer, offer, day); see docs/simulator.md."""

    intercept: float = -5.3
    category_affinity: float = 0.6
    sensitivity_x_discount: float = 6.0
    bought_product_before: float = 1.5
    business_type_match: float = 0.8
    recency: float = 1.0
    promo_affinity: float = 1.2
    noise_sd: float = 0.5
    recency_scale_days: float = 14.0
    mean_delay_days: float = 3.0
    max_delay_days: float = 14.0


BUSINESS_TYPES: tuple[BusinessType, ...] = (
    BusinessType(
        "horeca", 0.35, 0.20, 4.0, 5.0, (1.2, 1.1, 1.1, 1.2, 1.3, 0.8, 0.3), 8.0, (2.0, 3.0),
        (("meat_fish", 1.8), ("produce", 1.6), ("dairy", 1.3), ("paper_disposables", 1.2)),
    ),
    BusinessType(
        "trader", 0.20, 0.15, 5.0, 9.0, (1.2, 1.1, 1.1, 1.1, 1.2, 1.0, 0.3), 7.5, (4.0, 2.0),
        (("beverages", 1.5), ("snacks_confectionery", 1.5), ("dry_goods", 1.4), ("meat_fish", 0.5)),
    ),
    BusinessType(
        "office", 0.15, 0.07, 2.0, 2.0, (1.3, 1.3, 1.3, 1.3, 1.1, 0.1, 0.05), 11.0, (2.0, 4.0),
        (("beverages", 1.8), ("snacks_confectionery", 1.8), ("paper_disposables", 1.6), ("meat_fish", 0.2)),
    ),
    BusinessType(
        "household", 0.30, 0.05, 2.5, 0.5, (0.8, 0.8, 0.9, 0.9, 1.2, 1.6, 0.6), 16.0, (3.0, 3.0),
    ),
)  # fmt: skip

CATEGORIES: tuple[Category, ...] = (
    Category("beverages", 0.14, 2.5, 0.0, 0.28, "drinks"),
    Category("dairy", 0.10, 1.8, 0.9, 0.22, "fresh_food"),
    Category("bakery", 0.07, 2.2, 0.95, 0.35, "fresh_food"),
    Category("meat_fish", 0.10, 9.0, 0.9, 0.20, "fresh_food"),
    Category("produce", 0.10, 2.0, 1.0, 0.30, "fresh_food"),
    Category("frozen", 0.08, 4.5, 0.0, 0.27, "fresh_food"),
    Category("dry_goods", 0.14, 2.2, 0.0, 0.25, "ambient_food"),
    Category("snacks_confectionery", 0.09, 2.0, 0.0, 0.33, "ambient_food"),
    Category("cleaning_hygiene", 0.09, 4.0, 0.0, 0.35, "non_food"),
    Category("paper_disposables", 0.09, 6.0, 0.0, 0.30, "non_food"),
)

REGIONS: tuple[tuple[str, float], ...] = (
    ("north", 0.22),
    ("south", 0.20),
    ("east", 0.18),
    ("west", 0.20),
    ("central", 0.20),
)

REDEMPTION_MODEL = RedemptionModel()

PREFERENCE_CONCENTRATION = 5.0  # Dirichlet concentration of category preferences
ACTIVITY_SIGMA = 0.6  # lognormal spread of activity rates
SIGNUP_DURING_HISTORY = 0.10
SIGNUP_MEAN_AGE_DAYS = 500.0
TIER_PRICE_FACTOR = np.array([1.0, 1.6, 2.5])
TIER_SHARES = (0.5, 0.3, 0.2)
OWN_BRAND_SHARE = 0.25
TIER_AVERSION_BY_SENSITIVITY_BAND = np.array([-0.4, 0.2, 0.9])  # log-weight per tier step
MAX_LINES = 10
PROMO_BASE, PROMO_SLOPE = 0.02, 0.35

PRODUCT, CATEGORY, STORE = 0, 1, 2  # offer kinds
OFFER_KIND_SHARES = (0.50, 0.35, 0.15)
OFFER_DISCOUNT_RANGE = ((10.0, 40.0), (5.0, 30.0), (5.0, 15.0))  # by kind
OFFER_MIN_DAYS, OFFER_MAX_DAYS = 7, 28
OFFER_LEAD_DAYS = 14  # offers may start this many days before the history
OFFER_PLANNED_AHEAD_DAYS = 14  # offers are planned this far past the history, so its next day looks like any other
TARGETED_SHARE = 0.20

PERCENT, FIXED = 0, 1  # discount types
DISCOUNT_TYPES = ("percent", "fixed")
FIXED_SHARE = 0.25  # share of offers giving a fixed reward above a minimum spend
FIXED_REWARD_RANGE = (5.0, 50.0)  # whole currency units, log-uniform
FIXED_MIN_SPEND_FACTOR = (3.0, 10.0)  # min_spend = reward x this, whole units
PERCENT_MIN_SPEND_SHARE = 0.30  # percent offers that also need a minimum spend
PERCENT_MIN_SPEND_RANGE = (20.0, 150.0)  # rounded to multiples of 5


@dataclass(frozen=True)
class LoggingPolicy:
    """The serving policy that chose the logged impressions; see docs/simulator.md.

    Each eligible offer is included independently with probability
    q = clip(expected_shown * softmax(score / temperature), min_q, max_q), where
    score = depth_weight * discount depth (in tens of percent) + prior_weight * log popularity of what
    the offer covers + target_bonus for an offer targeted at the customer's business type. Visits that
    come out empty are drawn again, so the logged propensity is q / (1 - prod(1 - q_eligible))."""

    expected_shown: float = 2.2
    temperature: float = 1.0
    depth_weight: float = 1.0
    prior_weight: float = 0.7
    target_bonus: float = 0.5
    min_q: float = 0.02
    max_q: float = 0.9


@dataclass(frozen=True)
class EventModel:
    """How impressions turn into view, click and dismiss events; see docs/simulator.md."""

    click_if_redeemed: float = 0.9
    click_base: float = 0.02
    click_slope: float = 1.5  # click probability = base + slope x true p (capped) when not redeemed
    max_click: float = 0.95
    dismiss_base: float = 0.35  # dismiss probability = base x (1 - true p) when not clicked
    mean_click_delay_s: float = 40.0
    mean_dismiss_delay_s: float = 10.0


LOGGING_POLICY = LoggingPolicy()
EVENT_MODEL = EventModel()
VIEW, CLICK, DISMISS = 0, 1, 2  # event types
EVENT_TYPES = ("view", "click", "dismiss")


# --- latent state ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    start_date: dt.date
    days: int

    @property
    def start_s(self) -> int:
        """Epoch seconds of midnight UTC on day 0."""
        return (self.start_date - _EPOCH).days * SECONDS_PER_DAY

    @property
    def weekday(self) -> np.ndarray:
        """Weekday (Monday = 0) of each day of the history."""
        return (self.start_date.weekday() + np.arange(self.days)) % 7


@dataclass(frozen=True)
class Customers:
    business_type: np.ndarray  # index into BUSINESS_TYPES
    region: np.ndarray  # index into REGIONS
    signup_day: np.ndarray  # day index; negative: before the history
    category_preference: np.ndarray  # (customers, categories), rows sum to 1
    price_sensitivity: np.ndarray  # 0..1
    promo_affinity: np.ndarray  # 0..1
    activity_rate: np.ndarray  # orders per day
    visit_probability: np.ndarray  # daily chance of seeing offers


@dataclass(frozen=True)
class Products:
    category: np.ndarray  # index into CATEGORIES
    price_tier: np.ndarray  # 1..3
    is_own_brand: np.ndarray
    is_fresh: np.ndarray
    unit_price: np.ndarray
    unit_cost: np.ndarray
    popularity: np.ndarray  # relative choice weight within the category


@dataclass(frozen=True)
class Orders:
    customer: np.ndarray  # customer index, one per order, orders sorted by time
    day: np.ndarray
    ordered_at_s: np.ndarray  # epoch seconds
    line_order: np.ndarray  # order index of each line, lines sorted by order
    line_number: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    is_promo: np.ndarray


@dataclass(frozen=True)
class Offers:
    kind: np.ndarray  # PRODUCT, CATEGORY or STORE
    product: np.ndarray  # product index, -1 unless a product offer
    category: np.ndarray  # category index, -1 unless a category offer
    covered_category: np.ndarray  # the category the offer is about (a product's own); -1 store-wide
    discount_type: np.ndarray  # PERCENT or FIXED
    discount_pct: np.ndarray  # NaN for fixed offers
    reward_amount: np.ndarray  # NaN for percent offers
    min_spend: np.ndarray  # NaN: none
    discount_depth: np.ndarray  # 0..1: discount_pct / 100, or reward_amount / min_spend
    popularity_prior: np.ndarray  # log popularity of what the offer covers (the policy's prior)
    margin_impact: np.ndarray
    start_day: np.ndarray  # day index, may be negative
    end_day: np.ndarray  # inclusive, may be past the history
    target_business_type: np.ndarray  # index into BUSINESS_TYPES, -1: everyone


@dataclass(frozen=True)
class Impressions:
    customer: np.ndarray  # sorted by shown_at_s
    offer: np.ndarray
    day: np.ndarray
    shown_at_s: np.ndarray
    propensity: np.ndarray  # probability that the logging policy showed this offer in this visit


@dataclass(frozen=True)
class ImpressionFeatures:
    """The true drivers of redemption, one value per impression."""

    category_affinity: np.ndarray
    price_sensitivity: np.ndarray
    discount_depth: np.ndarray
    bought_product_before: np.ndarray
    business_type_match: np.ndarray
    recency: np.ndarray
    promo_affinity: np.ndarray


@dataclass(frozen=True)
class Redemptions:
    customer: np.ndarray  # sorted by redeemed_at_s
    offer: np.ndarray
    impression: np.ndarray  # the impression that led to it
    redeemed_at_s: np.ndarray


@dataclass(frozen=True)
class InteractionEvents:
    impression: np.ndarray  # sorted by event_at_s
    event_type: np.ndarray  # VIEW, CLICK or DISMISS
    event_at_s: np.ndarray


@dataclass(frozen=True)
class World:
    """Everything `simulate` drew: the latent state and the events, as arrays of indices."""

    params: GeneratorParams
    calendar: Calendar
    customers: Customers
    products: Products
    orders: Orders
    offers: Offers
    impressions: Impressions
    features: ImpressionFeatures
    redemption_probability: np.ndarray  # per impression, noise included: the truth
    label_probability: np.ndarray  # per impression: P(its 7-day label is 1 | the state when shown)
    redemptions: Redemptions
    events: InteractionEvents
    # drawn for the history's impressions but due after its end (before the offer's): not in raw,
    # where the closed loop (ml/closed_loop.py) releases them on their day
    pending_redemptions: Redemptions


# --- public API ------------------------------------------------------------------------------------


def generate_dataset(params: GeneratorParams) -> dict[str, pd.DataFrame]:
    """The raw tables, keyed in load order: customers, products, orders, order_items, offers,
    impressions, redemptions, interaction_events."""
    return to_frames(simulate(params))


def generate_all(params: GeneratorParams) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(raw tables, truth tables) from one simulation."""
    world = simulate(params)
    return to_frames(world), truth_tables(world)


def simulate(
    params: GeneratorParams,
    model: RedemptionModel = REDEMPTION_MODEL,
    policy: LoggingPolicy = LOGGING_POLICY,
    event_model: EventModel = EVENT_MODEL,
) -> World:
    """Draw the whole world for `params`: latent variables, orders, offers, impressions,
    redemptions and interaction events."""
    streams = np.random.default_rng(params.seed).spawn(7)
    calendar = Calendar(params.end_date - dt.timedelta(days=params.days - 1), params.days)
    customers = draw_customers(streams[0], params.customers, calendar)
    products = draw_products(streams[1], params.products)
    orders = simulate_orders(streams[2], customers, products, calendar)
    offers = plan_offers(streams[3], params.offers, products, calendar)
    impressions = simulate_impressions(streams[4], customers, offers, calendar, policy)
    features = impression_features(customers, products, orders, offers, impressions, calendar, model)
    rng = streams[5]
    probability = true_probability(rng, features, model)
    redeemed_at_s = draw_redemption_times(rng, probability, impressions.shown_at_s, model)
    redemptions = first_redemptions(redeemed_at_s, impressions, offers, redemption_cut_s(impressions, offers, calendar))
    # the world goes on after the history: what would come after its end, before the offer's
    unbounded = first_redemptions(
        redeemed_at_s, impressions, offers, redemption_cut_s(impressions, offers, calendar, False)
    )
    pending = select_redemptions(
        unbounded, unbounded.redeemed_at_s >= calendar.start_s + calendar.days * SECONDS_PER_DAY
    )
    events = simulate_events(streams[6], probability, impressions, redemptions, event_model)
    label = label_probability(probability, impressions, offers, calendar, redemptions, model)
    return World(
        params,
        calendar,
        customers,
        products,
        orders,
        offers,
        impressions,
        features,
        probability,
        label,
        redemptions,
        events,
        pending,
    )


# --- customers and products ------------------------------------------------------------------------


def draw_customers(rng: np.random.Generator, n: int, calendar: Calendar) -> Customers:
    """Business type, region, signup day and the latent traits of `n` customers."""
    shares = np.array([bt.share for bt in BUSINESS_TYPES])
    business_type = rng.choice(len(BUSINESS_TYPES), size=n, p=shares / shares.sum())
    region_shares = np.array([share for _, share in REGIONS])
    region = rng.choice(len(REGIONS), size=n, p=region_shares / region_shares.sum())
    signup_day = _draw_signup_days(rng, n, calendar.days)
    category_preference = _draw_category_preferences(rng, business_type)
    beta = np.array([bt.price_sensitivity_beta for bt in BUSINESS_TYPES])
    price_sensitivity = rng.beta(beta[business_type, 0], beta[business_type, 1])
    promo_affinity = rng.beta(1.0 + 2.0 * price_sensitivity, 4.0)
    median_rate = np.array([bt.orders_per_day for bt in BUSINESS_TYPES])[business_type]
    activity_rate = median_rate * np.exp(rng.normal(0.0, ACTIVITY_SIGMA, n))
    visit_probability = np.clip(0.06 + 0.5 * activity_rate, 0.0, 0.9)
    return Customers(
        business_type,
        region,
        signup_day,
        category_preference,
        price_sensitivity,
        promo_affinity,
        activity_rate,
        visit_probability,
    )


def _draw_signup_days(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Most customers signed up before the history (exponential age), some during it."""
    before = -1 - np.floor(rng.exponential(SIGNUP_MEAN_AGE_DAYS, n)).astype(np.int64)
    during = rng.integers(0, days, n)
    return np.where(rng.random(n) < SIGNUP_DURING_HISTORY, during, before)


def _category_weights() -> np.ndarray:
    """(business types, categories) Dirichlet parameters of category preferences."""
    names = [c.name for c in CATEGORIES]
    base = np.array([c.share for c in CATEGORIES])
    weights = np.tile(base, (len(BUSINESS_TYPES), 1))
    for row, bt in enumerate(BUSINESS_TYPES):
        for name, factor in bt.category_tilt:
            weights[row, names.index(name)] *= factor
    return PREFERENCE_CONCENTRATION * weights / weights.sum(axis=1, keepdims=True)


def _draw_category_preferences(rng: np.random.Generator, business_type: np.ndarray) -> np.ndarray:
    """Dirichlet draws with business-type parameters, via normalised gammas."""
    gammas = rng.standard_gamma(_category_weights()[business_type])
    gammas = np.maximum(gammas, 1e-12)
    return gammas / gammas.sum(axis=1, keepdims=True)


def draw_products(rng: np.random.Generator, n: int) -> Products:
    """The assortment: every category has at least one product."""
    k = len(CATEGORIES)
    shares = np.array([c.share for c in CATEGORIES])
    category = rng.permutation(np.concatenate([np.arange(k), rng.choice(k, n - k, p=shares / shares.sum())]))
    price_tier = rng.choice(np.arange(1, 4), size=n, p=TIER_SHARES)
    is_own_brand = rng.random(n) < OWN_BRAND_SHARE
    is_fresh = rng.random(n) < np.array([c.fresh_share for c in CATEGORIES])[category]
    base_price = np.array([c.base_price for c in CATEGORIES])[category]
    price = base_price * TIER_PRICE_FACTOR[price_tier - 1] * np.exp(rng.normal(0.0, 0.35, n))
    price = np.maximum(np.round(np.where(is_own_brand, 0.85 * price, price), 2), 0.5)
    margin = np.array([c.margin for c in CATEGORIES])[category] + rng.normal(0.0, 0.06, n) + 0.08 * is_own_brand
    cost = np.minimum(np.round(price * (1.0 - np.clip(margin, 0.05, 0.6)), 2), np.round(price - 0.01, 2))
    popularity = np.exp(rng.normal(0.0, 1.0, n))
    return Products(category, price_tier, is_own_brand, is_fresh, price, cost, popularity)


# --- orders ----------------------------------------------------------------------------------------


def simulate_orders(rng: np.random.Generator, customers: Customers, products: Products, calendar: Calendar) -> Orders:
    """Orders per customer-day and their lines."""
    customer, day = _order_days(rng, customers, calendar)
    business_type = customers.business_type[customer]
    hour = np.array([bt.order_hour for bt in BUSINESS_TYPES])[business_type]
    second = np.clip(rng.normal(hour * 3600.0, 2.5 * 3600.0), 5 * 3600, 22 * 3600 - 1).astype(np.int64)
    ordered_at_s = calendar.start_s + day * SECONDS_PER_DAY + second
    by_time = np.lexsort((customer, ordered_at_s))
    customer, day, ordered_at_s = customer[by_time], day[by_time], ordered_at_s[by_time]

    extra_lines = np.array([bt.basket_extra_lines for bt in BUSINESS_TYPES])[customers.business_type[customer]]
    lines = 1 + np.minimum(rng.poisson(extra_lines), MAX_LINES - 1)
    line_order = np.repeat(np.arange(len(customer)), lines)
    line_number = np.arange(len(line_order)) - np.repeat(np.cumsum(lines) - lines, lines) + 1
    line_customer = customer[line_order]
    category = _draw_line_categories(rng, customers.category_preference, line_customer)
    product = _draw_line_products(rng, category, customers.price_sensitivity[line_customer], products)
    quantity_extra = np.array([bt.quantity_extra for bt in BUSINESS_TYPES])
    quantity = 1 + rng.poisson(quantity_extra[customers.business_type[line_customer]])
    is_promo = rng.random(len(line_order)) < PROMO_BASE + PROMO_SLOPE * customers.promo_affinity[line_customer]
    promo_price = np.round(products.unit_price[product] * (1.0 - rng.uniform(0.05, 0.30, len(product))), 2)
    unit_price = np.where(is_promo, np.maximum(promo_price, 0.01), products.unit_price[product])
    return Orders(
        customer,
        day,
        ordered_at_s,
        line_order,
        line_number.astype(np.int32),
        product,
        quantity.astype(np.int32),
        unit_price,
        is_promo,
    )


def _order_days(rng: np.random.Generator, customers: Customers, calendar: Calendar) -> tuple[np.ndarray, np.ndarray]:
    """(customer, day) of every order: Poisson by activity rate and weekday, none before signup."""
    weekday_weights = np.array([bt.weekday_weights for bt in BUSINESS_TYPES])
    weekday_weights = weekday_weights / weekday_weights.mean(axis=1, keepdims=True)
    rate = customers.activity_rate[:, None] * weekday_weights[customers.business_type][:, calendar.weekday]
    signed_up = np.arange(calendar.days)[None, :] >= customers.signup_day[:, None]
    counts = rng.poisson(np.where(signed_up, rate, 0.0))
    customer, day = np.nonzero(counts)
    repeats = counts[customer, day]
    return np.repeat(customer, repeats), np.repeat(day, repeats)


def _draw_line_categories(rng: np.random.Generator, preference: np.ndarray, customer: np.ndarray) -> np.ndarray:
    """Each line's category, drawn from its customer's preference vector (inverse CDF)."""
    u = rng.random(len(customer))
    cumulative = np.zeros(len(customer))
    category = np.zeros(len(customer), dtype=np.int64)
    for k in range(preference.shape[1] - 1):
        cumulative += preference[customer, k]
        category += u >= cumulative
    return category


def _draw_line_products(
    rng: np.random.Generator, category: np.ndarray, price_sensitivity: np.ndarray, products: Products
) -> np.ndarray:
    """Each line's product within its category: by popularity, toward tier 1 when price-sensitive."""
    bands = len(TIER_AVERSION_BY_SENSITIVITY_BAND)
    band = np.minimum((price_sensitivity * bands).astype(np.int64), bands - 1)
    group = category * bands + band
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(CATEGORIES) * bands + 1))
    product = np.empty(len(category), dtype=np.int64)
    for g in range(len(CATEGORIES) * bands):
        lines = order[bounds[g] : bounds[g + 1]]
        if len(lines) == 0:
            continue
        candidates = np.flatnonzero(products.category == g // bands)
        aversion = TIER_AVERSION_BY_SENSITIVITY_BAND[g % bands]
        weight = products.popularity[candidates] * np.exp(-aversion * (products.price_tier[candidates] - 1))
        cdf = np.cumsum(weight) / weight.sum()
        pick = np.minimum(np.searchsorted(cdf, rng.random(len(lines)), side="right"), len(candidates) - 1)
        product[lines] = candidates[pick]
    return product


# --- offers and impressions ------------------------------------------------------------------------


def plan_offers(
    rng: np.random.Generator,
    n: int,
    products: Products,
    calendar: Calendar,
    start_days: tuple[int, int] | None = None,
) -> Offers:
    """Offers staggered over the history so that a steady number is active each day; with
    `start_days` (first, end exclusive), staggered over those days instead (the closed loop's new
    offers). Either way the draws are the same, so the history does not depend on it."""
    kind = rng.choice(3, size=n, p=OFFER_KIND_SHARES)
    duration = OFFER_MIN_DAYS + np.rint((OFFER_MAX_DAYS - OFFER_MIN_DAYS) * rng.beta(4.0, 1.2, n)).astype(np.int64)
    first, last = start_days or (-OFFER_LEAD_DAYS, calendar.days + OFFER_PLANNED_AHEAD_DAYS)
    start_day = first + np.floor((np.arange(n) + rng.random(n)) * (last - first) / max(n, 1)).astype(np.int64)
    end_day = start_day + duration - 1

    popularity = products.popularity / products.popularity.sum()
    product = np.where(kind == PRODUCT, rng.choice(len(popularity), size=n, p=popularity), -1)
    shares = np.array([c.share for c in CATEGORIES])
    category = np.where(kind == CATEGORY, rng.choice(len(CATEGORIES), size=n, p=shares / shares.sum()), -1)
    covered_category = np.where(kind == PRODUCT, products.category[np.maximum(product, 0)], category)

    low, high = np.array(OFFER_DISCOUNT_RANGE).T
    discount_type = np.where(rng.random(n) < FIXED_SHARE, FIXED, PERCENT)
    is_fixed = discount_type == FIXED
    percent = np.round(rng.uniform(low[kind], high[kind]), 2)
    reward = np.rint(np.exp(rng.uniform(*np.log(FIXED_REWARD_RANGE), n)))
    fixed_min_spend = np.rint(reward * rng.uniform(*FIXED_MIN_SPEND_FACTOR, n))
    percent_min_spend = 5.0 * np.rint(rng.uniform(*PERCENT_MIN_SPEND_RANGE, n) / 5.0)
    percent_min_spend[rng.random(n) >= PERCENT_MIN_SPEND_SHARE] = np.nan
    discount_pct = np.where(is_fixed, np.nan, percent)
    reward_amount = np.where(is_fixed, reward, np.nan)
    min_spend = np.where(is_fixed, fixed_min_spend, percent_min_spend)
    discount_depth = np.where(is_fixed, reward / fixed_min_spend, percent / 100.0)
    margin_impact = _margin_impact(discount_depth, kind, product, category, products)

    bt_shares = np.array([bt.share for bt in BUSINESS_TYPES])
    target = rng.choice(len(BUSINESS_TYPES), size=n, p=bt_shares / bt_shares.sum())
    target = np.where(rng.random(n) < TARGETED_SHARE, target, -1)
    return Offers(
        kind=kind,
        product=product,
        category=category,
        covered_category=covered_category,
        discount_type=discount_type,
        discount_pct=discount_pct,
        reward_amount=reward_amount,
        min_spend=min_spend,
        discount_depth=discount_depth,
        popularity_prior=_popularity_prior(kind, product, category, products),
        margin_impact=margin_impact,
        start_day=start_day,
        end_day=end_day,
        target_business_type=target,
    )


def _covered_mean(
    values: np.ndarray, kind: np.ndarray, product: np.ndarray, category: np.ndarray, products: Products
) -> np.ndarray:
    """Per offer: the value of its product, the mean over its category's products, or over all products."""
    by_category = np.bincount(products.category, values, len(CATEGORIES)) / np.bincount(
        products.category, minlength=len(CATEGORIES)
    )
    return np.select(
        [kind == PRODUCT, kind == CATEGORY],
        [values[np.maximum(product, 0)], by_category[np.maximum(category, 0)]],
        values.mean(),
    )


def _popularity_prior(kind: np.ndarray, product: np.ndarray, category: np.ndarray, products: Products) -> np.ndarray:
    """Log popularity of what each offer covers: the logging policy's popularity prior."""
    return np.log(_covered_mean(products.popularity, kind, product, category, products))


def _margin_impact(
    discount_depth: np.ndarray, kind: np.ndarray, product: np.ndarray, category: np.ndarray, products: Products
) -> np.ndarray:
    """Share of the normal gross margin given up: discount depth / margin rate of what the offer covers."""
    margin_rate = (products.unit_price - products.unit_cost) / products.unit_price
    rate = _covered_mean(margin_rate, kind, product, category, products)
    return np.round(np.clip(discount_depth / rate, 0.0, 1.0), 4)


def inclusion_probabilities(
    offers: Offers, active: np.ndarray, business_type: int, policy: LoggingPolicy
) -> np.ndarray:
    """q per active offer for a visitor of `business_type`: 0 where not eligible (targeted elsewhere)."""
    target = offers.target_business_type[active]
    eligible = (target < 0) | (target == business_type)
    if not eligible.any():
        return np.zeros(len(active))
    score = (
        policy.depth_weight * offers.discount_depth[active] * 10.0
        + policy.prior_weight * offers.popularity_prior[active]
        + policy.target_bonus * (target == business_type)
    ) / policy.temperature
    weight = np.where(eligible, np.exp(score - score[eligible].max()), 0.0)
    q = np.clip(policy.expected_shown * weight / weight.sum(), policy.min_q, policy.max_q)
    return np.where(eligible, q, 0.0)


def sample_shown(rng: np.random.Generator, q: np.ndarray) -> np.ndarray:
    """(visits, offers) inclusion mask: independent Bernoulli(q) per cell, rows drawn again until
    they show at least one offer. Rows must have some q > 0."""
    shown = rng.random(q.shape) < q
    empty = np.flatnonzero(~shown.any(axis=1))
    while len(empty):
        shown[empty] = rng.random((len(empty), q.shape[1])) < q[empty]
        empty = empty[~shown[empty].any(axis=1)]
    return shown


def propensities(q: np.ndarray) -> np.ndarray:
    """P(offer shown | the visit shows at least one) = q / (1 - prod(1 - q)), per row of q."""
    return q / -np.expm1(np.log1p(-q).sum(axis=-1, keepdims=True))


IMPRESSION_GAP_S = 7  # seconds between the offers of one visit, in the order shown


def session_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """When `n` visits start, in seconds after midnight: around noon (sd 3.5 h), 06:00..23:00."""
    return np.clip(rng.normal(12 * 3600.0, 3.5 * 3600.0, n), 6 * 3600, 23 * 3600).astype(np.int64)


def simulate_impressions(
    rng: np.random.Generator,
    customers: Customers,
    offers: Offers,
    calendar: Calendar,
    policy: LoggingPolicy = LOGGING_POLICY,
) -> Impressions:
    """The logged policy: each visiting customer sees the eligible offers that `sample_shown` picks,
    best-scored first, seconds apart; each impression keeps its propensity."""
    n = len(customers.business_type)
    parts: list[tuple[np.ndarray, ...]] = []
    for day in range(calendar.days):
        visiting = (rng.random(n) < customers.visit_probability) & (customers.signup_day <= day)
        active = np.flatnonzero((offers.start_day <= day) & (offers.end_day >= day))
        if len(active) == 0 or not visiting.any():
            continue
        q_by_type = np.array([inclusion_probabilities(offers, active, b, policy) for b in range(len(BUSINESS_TYPES))])
        has_eligible = q_by_type.any(axis=1)
        visitors = np.flatnonzero(visiting & has_eligible[customers.business_type])
        if len(visitors) == 0:
            continue
        q = q_by_type[customers.business_type[visitors]]
        shown = sample_shown(rng, q)
        ranked = np.argsort(np.where(shown, -q, 1.0), axis=1, kind="stable")
        row, position = np.nonzero(np.arange(len(active))[None, :] < shown.sum(axis=1)[:, None])
        column = ranked[row, position]
        session_s = session_seconds(rng, len(visitors))
        shown_at_s = calendar.start_s + day * SECONDS_PER_DAY + session_s[row] + IMPRESSION_GAP_S * position
        propensity = propensities(q_by_type)[customers.business_type[visitors[row]], column]
        parts.append((visitors[row], active[column], np.full(len(row), day), shown_at_s, propensity))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Impressions(empty, empty, empty, empty, np.zeros(0))
    customer, offer, day, shown_at_s, propensity = (np.concatenate(column) for column in zip(*parts, strict=True))
    by_time = np.lexsort((offer, customer, shown_at_s))
    return Impressions(customer[by_time], offer[by_time], day[by_time], shown_at_s[by_time], propensity[by_time])


# --- redemptions -----------------------------------------------------------------------------------


def impression_features(
    customers: Customers,
    products: Products,
    orders: Orders,
    offers: Offers,
    impressions: Impressions,
    calendar: Calendar,
    model: RedemptionModel,
) -> ImpressionFeatures:
    """The true drivers of redemption for every impression (see docs/simulator.md)."""
    customer, offer = impressions.customer, impressions.offer
    covered = offers.covered_category[offer]
    affinity = customers.category_preference[customer, np.maximum(covered, 0)] * len(CATEGORIES)
    bought = bought_before(orders, len(products.category), customer, offers.product[offer], impressions.day)
    target = offers.target_business_type[offer]
    match = (target >= 0) & (target == customers.business_type[customer])
    days_since = days_since_last_order(orders, calendar.days, customer, impressions.day)
    recency = np.where(days_since > 0, np.exp(-np.maximum(days_since, 0) / model.recency_scale_days), 0.0)
    return ImpressionFeatures(
        category_affinity=np.where(covered >= 0, affinity, 1.0),
        price_sensitivity=customers.price_sensitivity[customer],
        discount_depth=offers.discount_depth[offer],
        bought_product_before=bought,
        business_type_match=match,
        recency=recency,
        promo_affinity=customers.promo_affinity[customer],
    )


def bought_before(
    orders: Orders, n_products: int, customer: np.ndarray, product: np.ndarray, day: np.ndarray
) -> np.ndarray:
    """Whether each customer ordered `product` on a day before `day`; False where product is -1.

    Builds the first order day of every (customer, product) pair, for the asked products only,
    and looks the pairs up by binary search."""
    result = np.zeros(len(customer), dtype=bool)
    asked = np.flatnonzero(product >= 0)
    if len(asked) == 0 or len(orders.product) == 0:
        return result
    lines = np.flatnonzero(np.isin(orders.product, np.unique(product[asked])))
    if len(lines) == 0:
        return result
    days = int(orders.day.max()) + 1
    line_order = orders.line_order[lines]
    pair_day = np.sort(
        (orders.customer[line_order] * n_products + orders.product[lines]) * days + orders.day[line_order]
    )
    pair = pair_day // days
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    first_pair, first_day = pair[first], pair_day[first] % days
    key = customer[asked] * n_products + product[asked]
    at = np.minimum(np.searchsorted(first_pair, key), len(first_pair) - 1)
    result[asked] = (first_pair[at] == key) & (first_day[at] < day[asked])
    return result


def days_since_last_order(orders: Orders, days: int, customer: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from each customer's last order strictly before `day` to `day`; -1 without one."""
    order_key = np.unique(orders.customer * days + orders.day)
    at = np.searchsorted(order_key, customer * days + day) - 1
    previous = order_key[np.maximum(at, 0)] if len(order_key) else np.zeros(len(customer), dtype=np.int64)
    found = (at >= 0) & (previous // days == customer)
    return np.where(found, day - previous % days, -1)


def redemption_logit(features: ImpressionFeatures, model: RedemptionModel) -> np.ndarray:
    """The noiseless log-odds of redemption."""
    return (
        model.intercept
        + model.category_affinity * features.category_affinity
        + model.sensitivity_x_discount * features.price_sensitivity * features.discount_depth
        + model.bought_product_before * features.bought_product_before
        + model.business_type_match * features.business_type_match
        + model.recency * features.recency
        + model.promo_affinity * features.promo_affinity
    )


def true_probability(rng: np.random.Generator, features: ImpressionFeatures, model: RedemptionModel) -> np.ndarray:
    """The true redemption probability of each impression: the logit plus its own noise draw."""
    logit = redemption_logit(features, model) + rng.normal(0.0, model.noise_sd, len(features.discount_depth))
    return 1.0 / (1.0 + np.exp(-logit))


NOT_REDEEMED = np.iinfo(np.int64).max  # the redemption time of an impression whose draw failed


def simulate_redemptions(
    rng: np.random.Generator,
    probability: np.ndarray,
    impressions: Impressions,
    offers: Offers,
    calendar: Calendar,
    model: RedemptionModel,
) -> Redemptions:
    """Bernoulli redemptions with a 0..14-day delay, cut at the offer's end and at the data's end,
    at most one per customer and offer."""
    redeemed_at_s = draw_redemption_times(rng, probability, impressions.shown_at_s, model)
    return first_redemptions(redeemed_at_s, impressions, offers, redemption_cut_s(impressions, offers, calendar))


def draw_redemption_times(
    rng: np.random.Generator, probability: np.ndarray, shown_at_s: np.ndarray, model: RedemptionModel
) -> np.ndarray:
    """Each impression's Bernoulli(p) draw and delay (0..14 days, at least 60 s): its redemption
    time in epoch seconds, NOT_REDEEMED where the draw failed."""
    n = len(probability)
    redeemed = rng.random(n) < probability
    delay_s = np.maximum(_truncated_exponential(rng, n, model.mean_delay_days, model.max_delay_days), 60)
    return np.where(redeemed, shown_at_s + delay_s, NOT_REDEEMED)


def redemption_cut_s(
    impressions: Impressions, offers: Offers, calendar: Calendar, at_data_end: bool = True
) -> np.ndarray:
    """Per impression, the time its redemption must come before: the end of the offer's last day,
    or of the data's (`calendar`'s last day) when that comes sooner and `at_data_end`."""
    last_day = offers.end_day[impressions.offer]
    if at_data_end:
        last_day = np.minimum(last_day, calendar.days - 1)
    return calendar.start_s + (last_day + 1) * SECONDS_PER_DAY


def select_redemptions(redemptions: Redemptions, keep: np.ndarray) -> Redemptions:
    """The redemptions where `keep` (a mask or indices), in their order."""
    return Redemptions(
        redemptions.customer[keep],
        redemptions.offer[keep],
        redemptions.impression[keep],
        redemptions.redeemed_at_s[keep],
    )


def first_redemptions(
    redeemed_at_s: np.ndarray, impressions: Impressions, offers: Offers, cut_s: np.ndarray
) -> Redemptions:
    """The redemptions that come before their impression's `cut_s`, the earliest per customer and
    offer, ordered by time."""
    keep = redeemed_at_s < cut_s
    impression = np.flatnonzero(keep)
    impression = impression[
        np.lexsort((redeemed_at_s[impression], impressions.offer[impression], impressions.customer[impression]))
    ]
    pair = impressions.customer[impression] * max(len(offers.kind), 1) + impressions.offer[impression]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    impression = impression[first]
    impression = impression[
        np.lexsort((impressions.offer[impression], impressions.customer[impression], redeemed_at_s[impression]))
    ]
    return Redemptions(
        impressions.customer[impression], impressions.offer[impression], impression, redeemed_at_s[impression]
    )


# The training label of the warehouse (label_window_days in warehouse/dbt_project.yml): redeemed
# by the end of the 7th day after the impression's day.
LABEL_WINDOW_DAYS = 7


def label_probability(
    probability: np.ndarray,
    impressions: Impressions,
    offers: Offers,
    calendar: Calendar,
    redemptions: Redemptions,
    model: RedemptionModel,
) -> np.ndarray:
    """The probability that an impression's training label is 1, given the world when it was shown.

    The label of impression i is 1 when the customer redeems the offer between i's shown_at and
    the end of the label window (cut at the offer's and the data's end). Any impression j of the
    same customer and offer can cause that redemption: its draw succeeds with p_j and its delay
    lands in the window with the delay distribution's probability. An offer already redeemed when
    i is shown cannot be redeemed again (label probability 0); an earlier impression whose
    redemption has not come by then is conditioned on that. The draws are independent, so
    P(label_i = 1) = 1 - prod_j (1 - P(j redeems inside i's window)).
    """
    n = len(probability)
    shown = impressions.shown_at_s
    shown_day = (shown - calendar.start_s) // SECONDS_PER_DAY
    last_day = np.minimum(offers.end_day[impressions.offer], calendar.days - 1)
    window_end = calendar.start_s + (np.minimum(shown_day + LABEL_WINDOW_DAYS, last_day) + 1) * SECONDS_PER_DAY
    pair = impressions.customer.astype(np.int64) * max(len(offers.kind), 1) + impressions.offer

    # Every (i, j) of the same pair with j shown before i's window ends: a few per impression.
    both = pd.DataFrame({"pair": pair, "i": np.arange(n)}).merge(
        pd.DataFrame({"pair": pair, "j": np.arange(n)}), on="pair"
    )
    i, j = both["i"].to_numpy(), both["j"].to_numpy()
    keep = shown[j] < window_end[i]
    i, j = i[keep], j[keep]

    def delay_cdf(seconds: np.ndarray) -> np.ndarray:
        return _truncated_exponential_cdf(seconds / SECONDS_PER_DAY, model.mean_delay_days, model.max_delay_days)

    waited = np.maximum(shown[i] - shown[j], 0)  # how long j's redemption has not come when i is shown
    lands = delay_cdf(window_end[i] - shown[j]) - delay_cdf(waited)
    not_yet = 1.0 - probability[j] * delay_cdf(waited)
    chance = probability[j] * lands / not_yet
    miss_log = np.bincount(i, weights=np.log1p(-np.clip(chance, 0.0, 1.0 - 1e-12)), minlength=n)

    first_redeemed_at = (
        pd.Series(
            redemptions.redeemed_at_s,
            index=pd.Index(redemptions.customer.astype(np.int64) * max(len(offers.kind), 1) + redemptions.offer),
        )
        .groupby(level=0)
        .min()
    )
    already_redeemed = pd.Series(pair).map(first_redeemed_at).to_numpy() < shown  # never redeemed: NaN, False
    return np.where(already_redeemed, 0.0, 1.0 - np.exp(miss_log))


def _truncated_exponential_cdf(days: np.ndarray, mean_days: float, max_days: float) -> np.ndarray:
    """P(delay <= days) for the delay of `_truncated_exponential`."""
    return np.clip((1.0 - np.exp(-np.maximum(days, 0.0) / mean_days)) / (1.0 - np.exp(-max_days / mean_days)), 0, 1)


def _truncated_exponential(rng: np.random.Generator, n: int, mean_days: float, max_days: float) -> np.ndarray:
    """Whole seconds, exponential with `mean_days`, truncated at `max_days` (inverse CDF)."""
    tail = 1.0 - np.exp(-max_days / mean_days)
    days = -mean_days * np.log1p(-rng.random(n) * tail)
    return np.minimum(np.floor(days * SECONDS_PER_DAY), max_days * SECONDS_PER_DAY).astype(np.int64)


# --- interaction events --------------------------------------------------------------------------


def simulate_events(
    rng: np.random.Generator,
    probability: np.ndarray,
    impressions: Impressions,
    redemptions: Redemptions,
    model: EventModel = EVENT_MODEL,
) -> InteractionEvents:
    """A view for every impression; a click, more likely the higher the true probability and before
    the redemption for most redeemed impressions; a dismiss for some of the others."""
    n = len(probability)
    shown_at_s = impressions.shown_at_s
    redeemed_at_s = np.full(n, np.iinfo(np.int64).max)
    redeemed_at_s[redemptions.impression] = redemptions.redeemed_at_s
    is_redeemed = redeemed_at_s < np.iinfo(np.int64).max

    view_at_s = shown_at_s + rng.integers(0, 3, n)
    click_probability = np.where(
        is_redeemed,
        model.click_if_redeemed,
        np.minimum(model.click_base + model.click_slope * probability, model.max_click),
    )
    clicked = rng.random(n) < click_probability
    click_at_s = np.minimum(
        view_at_s + 1 + np.floor(rng.exponential(model.mean_click_delay_s, n)).astype(np.int64), redeemed_at_s - 1
    )
    dismissed = ~clicked & ~is_redeemed & (rng.random(n) < model.dismiss_base * (1.0 - probability))
    dismiss_at_s = view_at_s + 1 + np.floor(rng.exponential(model.mean_dismiss_delay_s, n)).astype(np.int64)

    every = np.arange(n)
    impression = np.concatenate([every, every[clicked], every[dismissed]])
    event_type = np.concatenate(
        [np.full(n, VIEW), np.full(int(clicked.sum()), CLICK), np.full(int(dismissed.sum()), DISMISS)]
    )
    event_at_s = np.concatenate([view_at_s, click_at_s[clicked], dismiss_at_s[dismissed]])
    by_time = np.lexsort((event_type, impression, event_at_s))
    return InteractionEvents(impression[by_time], event_type[by_time], event_at_s[by_time])


# --- frames ----------------------------------------------------------------------------------------


def to_frames(world: World) -> dict[str, pd.DataFrame]:
    """The raw tables of the raw data contract, in load order and column order."""
    calendar, customers, products = world.calendar, world.customers, world.products
    orders, offers, impressions, redemptions = world.orders, world.offers, world.impressions, world.redemptions
    events = world.events
    bt_names = np.array([bt.name for bt in BUSINESS_TYPES], dtype=object)
    category_names = np.array([c.name for c in CATEGORIES], dtype=object)
    department_names = np.array([c.department for c in CATEGORIES], dtype=object)
    region_names = np.array([name for name, _ in REGIONS], dtype=object)
    return {
        "customers": pd.DataFrame(
            {
                "customer_id": _ids(len(customers.business_type)),
                "business_type": _strings(bt_names, customers.business_type),
                "region": _strings(region_names, customers.region),
                "signup_date": _dates(calendar, customers.signup_day),
            }
        ),
        "products": pd.DataFrame(
            {
                "product_id": _ids(len(products.category)),
                "department": _strings(department_names, products.category),
                "category": _strings(category_names, products.category),
                "price_tier": products.price_tier.astype(np.int16),
                "is_own_brand": products.is_own_brand,
                "is_fresh": products.is_fresh,
                "unit_price": products.unit_price,
                "unit_cost": products.unit_cost,
            }
        ),
        "orders": pd.DataFrame(
            {
                "order_id": _ids(len(orders.customer)),
                "customer_id": orders.customer.astype(np.int64) + 1,
                "ordered_at": _timestamps(orders.ordered_at_s),
            }
        ),
        "order_items": pd.DataFrame(
            {
                "order_id": orders.line_order.astype(np.int64) + 1,
                "line_number": orders.line_number,
                "product_id": orders.product + 1,
                "quantity": orders.quantity,
                "unit_price": orders.unit_price,
                "is_promo": orders.is_promo,
            }
        ),
        "offers": pd.DataFrame(
            {
                "offer_id": _ids(len(offers.kind)),
                "product_id": pd.arrays.IntegerArray(offers.product.astype(np.int64) + 1, offers.product < 0),
                "category": _strings(category_names, offers.category),
                "discount_type": _strings(np.array(DISCOUNT_TYPES, dtype=object), offers.discount_type),
                "discount_pct": _nullable_floats(offers.discount_pct),
                "reward_amount": _nullable_floats(offers.reward_amount),
                "min_spend": _nullable_floats(offers.min_spend),
                "margin_impact": offers.margin_impact,
                "starts_on": _dates(calendar, offers.start_day),
                "ends_on": _dates(calendar, offers.end_day),
                "target_business_type": _strings(bt_names, offers.target_business_type),
            }
        ),
        "impressions": pd.DataFrame(
            {
                "impression_id": _ids(len(impressions.customer)),
                "customer_id": impressions.customer.astype(np.int64) + 1,
                "offer_id": impressions.offer.astype(np.int64) + 1,
                "shown_at": _timestamps(impressions.shown_at_s),
                "propensity": impressions.propensity,
            }
        ),
        "redemptions": pd.DataFrame(
            {
                "redemption_id": _ids(len(redemptions.customer)),
                "customer_id": redemptions.customer.astype(np.int64) + 1,
                "offer_id": redemptions.offer.astype(np.int64) + 1,
                "redeemed_at": _timestamps(redemptions.redeemed_at_s),
            }
        ),
        "interaction_events": pd.DataFrame(
            {
                "event_id": _ids(len(events.impression)),
                "impression_id": events.impression.astype(np.int64) + 1,
                "event_type": _strings(np.array(EVENT_TYPES, dtype=object), events.event_type),
                "event_at": _timestamps(events.event_at_s),
            }
        ),
    }


def truth_tables(world: World) -> dict[str, pd.DataFrame]:
    """The tables of schema `truth`: what the simulator knows and no model may read."""
    return {
        "impression_outcomes": pd.DataFrame(
            {
                "impression_id": _ids(len(world.impressions.customer)),
                "true_probability": world.redemption_probability,
                "label_probability": world.label_probability,
            }
        ),
    }


def _ids(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def _strings(names: np.ndarray, index: np.ndarray) -> pd.Series:
    """Names by index; -1 becomes missing."""
    values = names[np.maximum(index, 0)]
    values[index < 0] = None
    return pd.Series(values, dtype="str")


def _nullable_floats(values: np.ndarray) -> pd.arrays.FloatingArray:
    """Floats with NaN as missing (`Float64`)."""
    missing = np.isnan(values)
    return pd.arrays.FloatingArray(np.where(missing, 0.0, values), missing)


def _dates(calendar: Calendar, day: np.ndarray) -> pd.Series:
    """Day indices as an object column of `datetime.date`."""
    epoch_day = (calendar.start_date - _EPOCH).days + day.astype(np.int64)
    return pd.Series(epoch_day.astype("datetime64[D]")).dt.date


def _timestamps(epoch_s: np.ndarray) -> pd.Series:
    """Epoch seconds as `datetime64[ns, UTC]`."""
    return pd.Series(epoch_s.astype("datetime64[s]").astype("datetime64[ns]")).dt.tz_localize("UTC")
