"""`offerrank load DIR` against the embedded server: what loads, and a refused load changes nothing."""

from __future__ import annotations

import pytest
from psycopg import sql

from ml import data
from orchestration import cli
from tests.conftest import use_database
from tests.ml.test_contract import VALID, with_changes

RAW_TABLES = ["customers", "products", "orders", "order_items", "offers", "impressions", "redemptions",
              "interaction_events"]  # fmt: skip


@pytest.fixture(scope="module")
def settings(server):
    return use_database(server, "loader")


def snapshot(settings) -> dict[str, tuple[int, str]]:
    """Row count and an md5 of the sorted rows of every raw and truth table."""
    result = {}
    with data.connect(settings) as conn:
        for schema in (settings.raw_schema, settings.truth_schema):
            for (table,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s order by 1", (schema,)
            ).fetchall():
                result[f"{schema}.{table}"] = conn.execute(
                    sql.SQL(
                        "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                    ).format(sql.Identifier(schema, table))
                ).fetchone()
    return result


def test_required_tables_and_columns_only_load(settings, tmp_path, capsys):
    with data.connect(settings) as conn:
        # Stale simulator truth, and a customers table of an older contract (business_type not null).
        conn.execute("create schema truth; create table truth.impression_outcomes (impression_id bigint)")
        conn.execute("insert into truth.impression_outcomes values (1)")
        conn.execute("create schema raw; create table raw.customers (customer_id bigint, business_type text not null)")
    assert cli.main(["load", str(with_changes(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "customers" in out and "(no file: left empty)" in out
    with data.connect(settings) as conn:
        counts = {
            table: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("raw", table))).fetchone()[0]
            for table in RAW_TABLES
        }
        assert counts == {table: VALID[table].count("\n") - 1 if table in VALID else 0 for table in RAW_TABLES}
        assert conn.execute("select count(*) from raw.customers where business_type is null").fetchone()[0] == 2
        assert conn.execute("select ordered_at from raw.orders order by order_id").fetchone()[0].isoformat() == (
            "2026-01-01T08:00:00+00:00"
        )
        assert conn.execute("select count(*) from truth.impression_outcomes").fetchone()[0] == 0


def test_refused_load_leaves_raw_unchanged(settings, tmp_path, capsys):
    assert cli.main(["load", str(with_changes(tmp_path / "good"))]) == 0
    before = snapshot(settings)
    assert before["raw.customers"][0] == 2
    bad = with_changes(tmp_path / "bad", customers="customer_id\n1\n1\n")
    capsys.readouterr()
    assert cli.main(["load", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "customers.csv, row 3, column customer_id: duplicate primary key (customer_id=1), also at row 2" in err
    assert "unchanged" in err
    assert snapshot(settings) == before


def test_optional_columns_and_tables_load_when_given(settings, tmp_path):
    events = "event_id,impression_id,event_type,event_at\n1,1000,click,2026-01-02T10:00:05Z\n"
    products = "product_id,category,unit_price,is_fresh,price_tier\n10,dairy,2.50,yes,2\n"
    assert cli.main(["load", str(with_changes(tmp_path, interaction_events=events, products=products))]) == 0
    with data.connect(settings) as conn:
        assert conn.execute("select event_type from raw.interaction_events").fetchall() == [("click",)]
        assert conn.execute("select is_fresh, price_tier, unit_cost from raw.products").fetchone() == (True, 2, None)
