"""The ml tables' layout is applied once per version, not by every stage: a stage must not lock the
tables BI reads and other shards write (`data.ensure_ml_tables`)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from psycopg import sql

from ml import data
from ml.config import Settings
from tests.conftest import use_database

READER = "offerrank_reader"


@pytest.fixture(scope="module")
def settings(server: Settings) -> Settings:
    return use_database(server, "ml_tables")


@pytest.fixture
def schema(settings: Settings) -> Iterator[str]:
    name = "layout_under_test"
    yield name
    with data.connect(settings) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))


def _tables(schema: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(schema, table) for table in data.ML_TABLES)


def test_a_current_layout_is_checked_without_waiting_for_any_lock_on_its_tables(settings, schema):
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, schema, READER)
    with data.connect(settings) as reader, data.connect(settings) as stage, reader.transaction():
        # a BI query still open on every table
        reader.execute(sql.SQL("lock table {} in access share mode").format(_tables(schema)))
        stage.execute("set lock_timeout = '2s'")
        data.ensure_ml_tables(stage, schema, READER)


def test_a_new_layout_is_applied_once(settings, schema):
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, schema, READER)
        layout = sql.Identifier(schema, "ml_tables_layout")
        conn.execute(sql.SQL("update {} set digest = 'an older version'").format(layout))
        data.ensure_ml_tables(conn, schema, READER)
        data.ensure_ml_tables(conn, schema, READER)
        digests = [row[0] for row in conn.execute(sql.SQL("select digest from {} order by applied_at").format(layout))]
    assert digests[0] == "an older version" and len(digests) == 2 and len(digests[1]) == 64


def test_a_dropped_table_is_created_again(settings, schema):
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, schema, READER)
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(schema, "shadow_agreement")))
        data.ensure_ml_tables(conn, schema, READER)
        relation = sql.Identifier(schema, "shadow_agreement").as_string(conn)
        assert conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone() == (True,)


def test_another_reader_role_is_granted_the_tables(settings, schema):
    other = "offerrank_other_reader"
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, schema, READER)
        try:
            data.ensure_ml_tables(conn, schema, other)
            for table in data.ML_TABLES:
                relation = sql.Identifier(schema, table).as_string(conn)
                assert conn.execute("select has_table_privilege(%s, %s, 'select')", (other, relation)).fetchone() == (
                    True,
                ), table
        finally:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(other)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(other)))


def test_stages_starting_together_on_a_new_database_both_get_the_tables(settings, schema):
    def ensure(_: int) -> None:
        with data.connect(settings) as conn:
            data.ensure_ml_tables(conn, schema, READER)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ensure, range(4)))
    with data.connect(settings) as conn:
        layout = sql.Identifier(schema, "ml_tables_layout")
        assert conn.execute(sql.SQL("select count(*) from {}").format(layout)).fetchone() == (1,)
