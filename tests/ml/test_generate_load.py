"""The same seed loads identical tables; another seed does not (checksums in the database)."""

from psycopg import sql

from ml import data
from orchestration import cli
from tests.conftest import use_database

SMALL = ["--customers", "150", "--products", "40", "--offers", "12", "--days", "40"]


def _checksums(settings) -> dict[str, str]:
    sums = {}
    with data.connect(settings) as conn:
        for schema in (settings.raw_schema, settings.truth_schema):
            tables = conn.execute(
                "select table_name from information_schema.tables where table_schema = %s order by 1", (schema,)
            ).fetchall()
            for (table,) in tables:
                sums[f"{schema}.{table}"] = conn.execute(
                    sql.SQL("select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t").format(
                        sql.Identifier(schema, table)
                    )
                ).fetchone()[0]
    return sums


def test_same_seed_same_tables_other_seed_other_tables(server):
    runs = {}
    for name, seed in (("seed_a", "5"), ("seed_a_again", "5"), ("seed_b", "6")):
        settings = use_database(server, name)
        assert cli.main(["generate", *SMALL, "--seed", seed]) == 0
        runs[name] = _checksums(settings)
    raw_tables = ["customers", "products", "orders", "order_items", "offers", "impressions", "redemptions",
                  "interaction_events"]  # fmt: skip
    truth_tables = ["impression_outcomes", "generator_params", "pending_redemptions", "simulated_days"]
    assert set(runs["seed_a"]) == {f"raw.{t}" for t in raw_tables} | {f"truth.{t}" for t in truth_tables}
    assert runs["seed_a"] == runs["seed_a_again"]
    for table in ("raw.customers", "raw.impressions", "truth.impression_outcomes", "truth.generator_params"):
        assert runs["seed_b"][table] != runs["seed_a"][table], table
