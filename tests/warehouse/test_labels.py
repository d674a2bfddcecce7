"""The 7-day label rule, right-censoring and the relevance grades, on hand-made rows, through the real dbt models."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from psycopg import sql

from ml import data
from ml.features import DbtManifest
from tests.conftest import dbt, load_generated, use_database

AS_OF = "2026-03-01"


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def hand_made_world() -> dict[str, pd.DataFrame]:
    d = dt.date
    impressions = [
        # impression_id, customer, offer, shown_at
        (1, 1, 1, "2026-02-01 10:00"),  # redeemed on day 7 -> 1
        (2, 1, 2, "2026-02-01 10:00"),  # redeemed on day 8 -> 0
        (3, 2, 3, "2026-02-01 10:00"),  # the customer redeemed another offer -> 0
        (4, 2, 1, "2026-02-10 10:00"),  # the redemption came before the impression -> 0
        (5, 2, 2, "2026-02-05 10:00"),  # redeemed the same day, later -> 1
        (6, 1, 3, "2026-02-20 10:00"),  # never redeemed, window closed on 02-27 -> 0
        (7, 1, 3, "2026-02-25 10:00"),  # window still open on the as-of date -> excluded
    ]
    redemptions = [
        (1, 1, 1, "2026-02-08 23:00"),
        (2, 1, 2, "2026-02-09 01:00"),
        (3, 2, 1, "2026-02-03 09:00"),
        (4, 2, 2, "2026-02-05 12:00"),
    ]
    events = [
        # event_id, impression_id, event_type, event_at
        (1, 1, "view", "2026-02-01 10:00"),  # redeemed, and dismissed: 3
        (2, 1, "dismiss", "2026-02-01 10:01"),
        (3, 2, "view", "2026-02-01 10:00"),  # clicked on day 7, dismissed too: 2
        (4, 2, "dismiss", "2026-02-01 10:01"),
        (5, 2, "click", "2026-02-08 23:30"),
        (6, 3, "view", "2026-02-01 10:00"),  # viewed, then dismissed: 0
        (7, 3, "dismiss", "2026-02-01 10:02"),
        (8, 4, "view", "2026-02-10 10:00"),  # viewed only: 1
        # impression 5: redeemed with no event: 3
        (9, 6, "view", "2026-02-20 10:00"),  # viewed, clicked on day 8 (after the window): 1
        (10, 6, "click", "2026-02-28 00:30"),
        (11, 7, "click", "2026-02-25 10:01"),  # window still open: no row
    ]
    return {
        "customers": pd.DataFrame(
            {
                "customer_id": [1, 2],
                "business_type": ["horeca", "office"],
                "region": ["north", "south"],
                "signup_date": [d(2025, 1, 1), d(2025, 6, 1)],
            }
        ),
        "products": pd.DataFrame(
            {
                "product_id": [1, 2],
                "category": ["dairy", "bakery"],
                "price_tier": [1, 3],
                "is_own_brand": [True, False],
                "is_fresh": [True, True],
                "unit_price": [2.5, 4.0],
                "unit_cost": [1.5, 2.0],
            }
        ),
        "orders": pd.DataFrame(
            {
                "order_id": [1, 2],
                "customer_id": [1, 2],
                "ordered_at": [_ts("2026-01-05 09:00"), _ts("2026-01-20 09:00")],
            }
        ),
        "order_items": pd.DataFrame(
            {
                "order_id": [1, 2],
                "line_number": [1, 1],
                "product_id": [1, 2],
                "quantity": [3, 1],
                "unit_price": [2.5, 4.0],
                "is_promo": [False, True],
            }
        ),
        "offers": pd.DataFrame(
            {
                "offer_id": [1, 2, 3],
                "product_id": pd.array([1, None, None], dtype="Int64"),
                "category": [None, "bakery", None],
                "discount_pct": [10.0, 20.0, 5.0],
                "margin_impact": [0.2, 0.4, 0.1],
                "starts_on": [d(2026, 1, 1)] * 3,
                "ends_on": [d(2026, 3, 31)] * 3,
                "target_business_type": [None, None, None],
            }
        ),
        "impressions": pd.DataFrame(
            [(i, c, o, _ts(t)) for i, c, o, t in impressions],
            columns=["impression_id", "customer_id", "offer_id", "shown_at"],
        ),
        "redemptions": pd.DataFrame(
            [(i, c, o, _ts(t)) for i, c, o, t in redemptions],
            columns=["redemption_id", "customer_id", "offer_id", "redeemed_at"],
        ),
        "interaction_events": pd.DataFrame(
            [(e, i, kind, _ts(t)) for e, i, kind, t in events],
            columns=["event_id", "impression_id", "event_type", "event_at"],
        ),
    }


@pytest.fixture(scope="module")
def examples(server, dbt_manifest) -> dict[int, tuple[int, int]]:
    """The training examples of the hand-made world: impression_id -> (label, relevance)."""
    settings = use_database(server, "labels")
    load_generated(settings, hand_made_world())
    dbt("run", "--select", "+fct_training_examples", "--vars", json.dumps({"as_of_date": AS_OF}))
    with data.connect(settings) as conn:
        rows = conn.execute(
            sql.SQL("select impression_id, label, relevance from {}").format(
                DbtManifest.load().relation("fct_training_examples")
            )
        ).fetchall()
    return {impression_id: (label, relevance) for impression_id, label, relevance in rows}


@pytest.fixture(scope="module")
def labelled(examples) -> dict[int, int]:
    return {impression_id: label for impression_id, (label, _) in examples.items()}


@pytest.fixture(scope="module")
def relevance(examples) -> dict[int, int]:
    return {impression_id: grade for impression_id, (_, grade) in examples.items()}


def test_redeemed_on_day_seven_counts_and_day_eight_does_not(labelled):
    assert labelled[1] == 1
    assert labelled[2] == 0


def test_only_a_redemption_of_the_same_offer_after_the_impression_counts(labelled):
    assert labelled[3] == 0  # the customer redeemed offer 1, not offer 3
    assert labelled[4] == 0  # offer 1 was redeemed before this impression
    assert labelled[5] == 1  # same day, after the impression


def test_impressions_whose_window_is_still_open_are_excluded_not_negative(labelled):
    assert labelled[6] == 0
    assert 7 not in labelled


def test_a_redemption_is_relevance_three_whatever_the_events(relevance):
    assert relevance[1] == 3  # viewed and dismissed, then redeemed
    assert relevance[5] == 3  # no event at all


def test_a_click_in_the_window_is_two_even_with_a_dismiss(relevance):
    assert relevance[2] == 2  # clicked on day 7 (redeemed on day 8: label 0)


def test_a_dismiss_overrides_a_view(relevance):
    assert relevance[3] == 0


def test_a_view_alone_is_one_and_a_click_after_the_window_does_not_count(relevance):
    assert relevance[4] == 1
    assert relevance[6] == 1


def test_relevance_is_three_exactly_when_the_label_is_one(examples):
    assert all((label == 1) == (grade == 3) for label, grade in examples.values())
