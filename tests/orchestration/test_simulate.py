"""`offerrank simulate`: the closed loop through the real daily run, on a 400-customer world."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pandas as pd
import pytest
from psycopg import sql

from ml import data
from orchestration import cli
from tests.conftest import TEST_DATA, use_database

DAY_LINE = re.compile(r"simulated (\S+): ([\d,]+) impressions, ([\d,]+) redemptions released")


def _printed_days(out: str) -> dict[dt.date, tuple[int, int]]:
    return {
        dt.date.fromisoformat(day): (int(shown.replace(",", "")), int(released.replace(",", "")))
        for day, shown, released in DAY_LINE.findall(out)
    }


def _query(settings, query: sql.Composable, params: tuple = ()) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.copy_out(conn, query, params)


def test_simulate_serves_each_days_recommendations_and_continues(server, dbt_manifest, monkeypatch, capsys):
    monkeypatch.setenv("OFFERRANK_ALGORITHMS", "logreg")
    settings = use_database(server, "closed_loop")
    with pytest.raises(SystemExit):  # at least one day
        cli.main(["simulate", "--days", "0"])
    assert "at least 1" in capsys.readouterr().err
    assert cli.main(["simulate", "--days", "1"]) == 1  # no generated world: nothing to simulate
    assert "not made by `offerrank generate`" in capsys.readouterr().err

    params = dataclasses.asdict(TEST_DATA)
    generate = [f"--{name.replace('_', '-')}={value}" for name, value in params.items()]
    assert cli.main(["generate", *generate]) == 0
    capsys.readouterr()
    assert cli.main(["simulate", "--days", "2", "--no-reporting"]) == 0
    first = _printed_days(capsys.readouterr().out)
    day1, day2 = TEST_DATA.end_date + dt.timedelta(days=1), TEST_DATA.end_date + dt.timedelta(days=2)
    assert list(first) == [day1, day2]

    raw, truth, ml = settings.raw_schema, settings.truth_schema, settings.ml_schema
    shown = _query(
        settings,
        sql.SQL(
            "select (shown_at at time zone 'UTC')::date as day, count(*) as impressions,"
            " count(outcomes.impression_id) as outcomes, min(propensity) as low, max(propensity) as high"
            " from {} left join {} as outcomes using (impression_id) where shown_at >= %s group by 1 order by 1"
        ).format(sql.Identifier(raw, "impressions"), sql.Identifier(truth, "impression_outcomes")),
        (day1,),
    )
    released = _query(
        settings,
        sql.SQL(
            "select (redeemed_at at time zone 'UTC')::date as day, count(*) as redemptions from {}"
            " where redeemed_at >= %s group by 1 order by 1"
        ).format(sql.Identifier(raw, "redemptions")),
        (day1,),
    )
    assert shown["day"].tolist() == [day1, day2]
    assert shown["impressions"].tolist() == [first[day1][0], first[day2][0]]
    assert (shown["outcomes"] == shown["impressions"]).all() and (shown["low"] == 1).all()
    assert dict(zip(released["day"], released["redemptions"], strict=True)) == {
        day: counts[1] for day, counts in first.items() if counts[1]
    }

    # Day 2's run saw day 1: it ran for the day after day 1's impressions, and never recommends
    # an offer its customer redeemed on day 1.
    with data.connect(settings) as conn:
        assert data.next_run_date(conn, raw) == day2 + dt.timedelta(days=1)
    redeemed_day1 = _query(
        settings,
        sql.SQL("select customer_id, offer_id from {} where (redeemed_at at time zone 'UTC')::date = %s").format(
            sql.Identifier(raw, "redemptions")
        ),
        (day1,),
    )
    recommended_day2 = _query(
        settings,
        sql.SQL("select customer_id, offer_id from {} where score_date = %s").format(
            sql.Identifier(ml, "recommendations")
        ),
        (day2,),
    )
    assert len(redeemed_day1) > 0 and len(recommended_day2) > 0
    assert redeemed_day1.merge(recommended_day2).empty

    # A second invocation continues with day 3 rather than drawing days 1 and 2 again. Its run
    # meets another run's lock and stops at once (no third dbt build: test time), and a day whose
    # run failed is not drawn.
    monkeypatch.setenv("OFFERRANK_LOCK_WAIT_SECONDS", "0")
    day3 = day2 + dt.timedelta(days=1)
    with data.warehouse_lock(settings, "test: another run", 0):
        assert cli.main(["simulate", "--days", "1", "--no-reporting"]) == 1
    out, err = capsys.readouterr()
    assert f"the run for {day3} failed" in err and "holds the warehouse" in err and not _printed_days(out)
    days = _query(
        settings,
        sql.SQL("select simulated_on, impressions, redemptions_released from {} order by 1").format(
            sql.Identifier(truth, "simulated_days")
        ),
    )
    assert days["simulated_on"].tolist() == [day1, day2]
    assert list(zip(days["impressions"], days["redemptions_released"], strict=True)) == list(first.values())
    ids = _query(settings, sql.SQL("select impression_id from {}").format(sql.Identifier(raw, "impressions")))
    assert ids["impression_id"].is_unique and ids["impression_id"].max() == len(ids)
