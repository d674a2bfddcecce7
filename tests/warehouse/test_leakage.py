"""Leakage guard: rows dated after an impression never change that impression's features."""

from __future__ import annotations

import json

import pandas as pd
from psycopg import sql

from ml import data
from ml.features import TRAINING_MODEL, DbtManifest
from tests.conftest import dbt, load_generated, use_database


def _later_copies(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Duplicates, under new ids, of every order, impression and redemption at or after `cutoff`."""
    orders = frames["orders"][frames["orders"]["ordered_at"] >= cutoff]
    id_shift = int(frames["orders"]["order_id"].max())
    items = frames["order_items"][frames["order_items"]["order_id"].isin(orders["order_id"])]
    impressions = frames["impressions"][frames["impressions"]["shown_at"] >= cutoff]
    redemptions = frames["redemptions"][frames["redemptions"]["redeemed_at"] >= cutoff]
    return {
        "orders": orders.assign(order_id=orders["order_id"] + id_shift),
        "order_items": items.assign(order_id=items["order_id"] + id_shift),
        "impressions": impressions.assign(
            impression_id=impressions["impression_id"] + int(frames["impressions"]["impression_id"].max())
        ),
        "redemptions": redemptions.assign(
            redemption_id=redemptions["redemption_id"] + int(frames["redemptions"]["redemption_id"].max())
        ),
    }


def _features_before(settings, cutoff: pd.Timestamp) -> pd.DataFrame:
    manifest = DbtManifest.load()
    features = manifest.feature_columns(TRAINING_MODEL)
    with data.connect(settings) as conn:
        return data.read_relation(
            conn,
            manifest.relation(TRAINING_MODEL),
            ["impression_id", *features],
            where=sql.SQL("shown_at < %s"),
            params=(cutoff,),
            order_by=["impression_id"],
        )


def test_appending_later_rows_leaves_earlier_features_unchanged(server, generated_data, dbt_manifest):
    settings = use_database(server, "leakage")
    load_generated(settings, generated_data)
    end = generated_data["impressions"]["shown_at"].max().normalize()
    as_of = json.dumps({"as_of_date": (end + pd.Timedelta(days=1)).date().isoformat()})
    cutoff = end - pd.Timedelta(days=30)
    dbt("run", "--select", f"+{TRAINING_MODEL}", "--vars", as_of)
    before = _features_before(settings, cutoff)

    with data.connect(settings) as conn, conn.transaction():
        for table, rows in _later_copies(generated_data, cutoff).items():
            assert len(rows) > 0, table
            data.copy_in(conn, sql.Identifier(settings.raw_schema, table), rows)
    dbt("run", "--select", f"+{TRAINING_MODEL}", "--vars", as_of)
    after = _features_before(settings, cutoff)

    assert len(before) > 1000
    pd.testing.assert_frame_equal(after, before)
