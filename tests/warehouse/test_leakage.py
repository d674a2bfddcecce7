"""Leakage guard: rows dated after an as-of time never change any feature as of that time."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from psycopg import sql

from ml import data
from ml.config import Settings
from ml.features import TRAINING_MODEL, DbtManifest
from tests.conftest import dbt, load_generated, use_database

# Every date-keyed feature table, with its date column and grain.
FEATURE_TABLES = {
    "feat_customer_daily": ("as_of_date", ["as_of_date", "customer_id"]),
    "feat_offer_daily": ("as_of_date", ["as_of_date", "offer_id"]),
    "feat_customer_offer_daily": ("as_of_date", ["as_of_date", "customer_id", "offer_id"]),
    TRAINING_MODEL: ("shown_date", ["impression_id"]),
}


def _later_copies(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Copies, under new ids, of every order, impression, redemption and event at or after `cutoff`.

    The copied events are a second later: an exact copy under a new id is a duplicate event,
    which the warehouse quarantines (macros/raw_quarantine.sql) and no feature would ever read.
    """
    later = pd.Timedelta(seconds=1)
    orders = frames["orders"][frames["orders"]["ordered_at"] >= cutoff]
    id_shift = int(frames["orders"]["order_id"].max())
    items = frames["order_items"][frames["order_items"]["order_id"].isin(orders["order_id"])]
    impressions = frames["impressions"][frames["impressions"]["shown_at"] >= cutoff]
    impression_shift = int(frames["impressions"]["impression_id"].max())
    redemptions = frames["redemptions"][frames["redemptions"]["redeemed_at"] >= cutoff]
    events = frames["interaction_events"][frames["interaction_events"]["event_at"] >= cutoff]
    events = events[events["impression_id"].isin(impressions["impression_id"])]
    return {
        "orders": orders.assign(order_id=orders["order_id"] + id_shift),
        "order_items": items.assign(order_id=items["order_id"] + id_shift),
        "impressions": impressions.assign(
            impression_id=impressions["impression_id"] + impression_shift, shown_at=impressions["shown_at"] + later
        ),
        "redemptions": redemptions.assign(
            redemption_id=redemptions["redemption_id"] + int(frames["redemptions"]["redemption_id"].max()),
            redeemed_at=redemptions["redeemed_at"] + later,
        ),
        "interaction_events": events.assign(
            event_id=events["event_id"] + int(frames["interaction_events"]["event_id"].max()),
            impression_id=events["impression_id"] + impression_shift,
            event_at=events["event_at"] + later,
        ),
    }


def _columns(conn, relation: sql.Identifier) -> list[str]:
    cursor = conn.execute(sql.SQL("select * from {} limit 0").format(relation))
    return [column.name for column in cursor.description]


def _features_as_of(settings, cutoff: pd.Timestamp, last_original_impression_id: int) -> dict[str, pd.DataFrame]:
    """Every row as of a day up to `cutoff`'s (data before `cutoff` only) of every date-keyed feature table.

    Training examples of the appended impressions are new rows, not changed ones: left out.
    """
    manifest = DbtManifest.load()
    originals = sql.SQL(" and impression_id <= {}").format(last_original_impression_id)
    with data.connect(settings) as conn:
        return {
            model: data.read_relation(
                conn,
                manifest.relation(model),
                _columns(conn, manifest.relation(model)),
                where=sql.SQL("{} <= %s{}").format(
                    sql.Identifier(date_column), originals if model == TRAINING_MODEL else sql.SQL("")
                ),
                params=(cutoff.date(),),
                order_by=grain,
            )
            for model, (date_column, grain) in FEATURE_TABLES.items()
        }


def _as_of(frames: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, str]:
    """The last day with impressions, and dbt's vars for the day after it."""
    end = frames["impressions"]["shown_at"].max().normalize()
    return end, json.dumps({"as_of_date": (end + pd.Timedelta(days=1)).date().isoformat()})


@pytest.fixture(scope="module")
def original_build(server, generated_data, dbt_manifest) -> Settings:
    """The features built once on the generated world, for every cut-off to compare with."""
    settings = use_database(server, "leakage_original")
    load_generated(settings, generated_data)
    dbt("run", "--select", f"+{TRAINING_MODEL}", "--vars", _as_of(generated_data)[1])
    return settings


@pytest.mark.parametrize("days_before_end", [45, 12])
def test_appending_later_rows_leaves_earlier_features_unchanged(
    server, generated_data, original_build, days_before_end
):
    """Property: for a midnight T, duplicating every row dated at or after T changes no feature as of T or before.

    The enlarged world is built in a database of its own, so every date is computed from the
    enlarged data, and compared with the build of the original world.
    """
    end, as_of = _as_of(generated_data)
    cutoff = end - pd.Timedelta(days=days_before_end)
    last_impression_id = int(generated_data["impressions"]["impression_id"].max())
    before = _features_as_of(original_build, cutoff, last_impression_id)

    settings = use_database(server, f"leakage_{days_before_end}")
    load_generated(settings, generated_data)
    with data.connect(settings) as conn, conn.transaction():
        for table, rows in _later_copies(generated_data, cutoff).items():
            assert len(rows) > 0, table
            data.copy_in(conn, sql.Identifier(settings.raw_schema, table), rows)
    dbt("run", "--select", f"+{TRAINING_MODEL}", "--vars", as_of)
    after = _features_as_of(settings, cutoff, last_impression_id)

    for model, rows in before.items():
        assert len(rows) > 100, model
        pd.testing.assert_frame_equal(after[model], rows, obj=model)
