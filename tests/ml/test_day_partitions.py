"""offer_scores holds a partition per score date; a day is replaced by swapping in a new partition
loaded without its index (`data.replace_scored_day`), and older layouts are moved into it."""

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from ml import data
from ml.config import Settings, Shard
from tests.conftest import use_database

READER = "offerrank_reader"
SCHEMA = "partitions_under_test"
FIRST, SECOND = dt.date(2026, 6, 1), dt.date(2026, 6, 2)


@pytest.fixture(scope="module")
def settings(server: Settings) -> Settings:
    return use_database(server, "day_partitions")


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    with data.connect(settings) as connection:
        yield connection
        connection.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(SCHEMA)))


def _chunk(day: dt.date, customers: range, score: float, offers: tuple[int, ...] = (7, 8)) -> data.ServedChunk:
    """Every customer of `customers` scored `score` on each of `offers`, all recommended."""
    rows = [(customer, offer) for customer in customers for offer in offers]
    scores = pd.DataFrame(
        {
            "score_date": day,
            "customer_id": [customer for customer, _ in rows],
            "offer_id": [offer for _, offer in rows],
            "model_id": "m",
            "score": score,
            "rank": [offers.index(offer) + 1 for _, offer in rows],
            "raw_score": score,
            "ranked_by": "model",
            "variant": "treatment",
        }
    )
    recommendations = scores.assign(score_rank=scores["rank"])
    return data.ServedChunk(scores, recommendations)


def _scores(conn: psycopg.Connection, day: dt.date) -> pd.DataFrame:
    return data.date_rows(conn, SCHEMA, "offer_scores", "score_date", day)


def _partitions(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """The partitions of offer_scores and their indexes, as (table, index) names: attaching a day
    must adopt its loaded primary key, not build another index."""
    return [
        row
        for row in conn.execute(
            "select c.relname, i.relname from pg_inherits as t join pg_class as c on c.oid = t.inhrelid"
            " join pg_index as x on x.indrelid = c.oid join pg_class as i on i.oid = x.indexrelid"
            " where t.inhparent = %s::regclass order by 1, 2",
            (sql.Identifier(SCHEMA, "offer_scores").as_string(conn),),
        )
    ]


def _relations_like(conn: psycopg.Connection, pattern: str) -> list[str]:
    rows = conn.execute(
        "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname like %s order by 1",
        (SCHEMA, pattern),
    )
    return [name for (name,) in rows]


def test_a_day_is_replaced_whole_by_a_new_partition_and_other_days_stay(conn):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    data.replace_scored_day(conn, SCHEMA, FIRST, [_chunk(FIRST, range(1, 4), 0.1)])
    data.replace_scored_day(conn, SCHEMA, SECOND, [_chunk(SECOND, range(1, 3), 0.2)])
    second = _scores(conn, SECOND)

    # the first day again, with fewer customers and other scores, in two chunks
    replaced = data.replace_scored_day(
        conn, SCHEMA, FIRST, [_chunk(FIRST, range(10, 12), 0.3), _chunk(FIRST, range(12, 13), 0.3)]
    )

    assert replaced.scores == 6
    first = _scores(conn, FIRST)
    assert sorted(first["customer_id"].unique()) == [10, 11, 12] and set(first["score"]) == {0.3}
    pd.testing.assert_frame_equal(_scores(conn, SECOND), second)
    assert _partitions(conn) == [
        ("offer_scores_2026_06_01", "offer_scores_2026_06_01_pkey"),
        ("offer_scores_2026_06_02", "offer_scores_2026_06_02_pkey"),
    ]
    assert _relations_like(conn, "%load%") == []  # no table left behind
    # the reader role reads the new partition through the table
    reader = sql.Identifier(SCHEMA, "offer_scores").as_string(conn)
    assert conn.execute("select has_table_privilege(%s, %s, 'select')", (READER, reader)).fetchone() == (True,)


def test_readers_see_the_old_day_until_the_new_one_is_committed(conn, settings):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    data.replace_scored_day(conn, SCHEMA, FIRST, [_chunk(FIRST, range(1, 4), 0.1)])
    old = _scores(conn, FIRST)
    seen = []

    def chunks() -> Iterator[data.ServedChunk]:
        with data.connect(settings) as reader:
            for customers in (range(20, 22), range(22, 24)):
                seen.append(_scores(reader, FIRST))  # while the day is being written
                yield _chunk(FIRST, customers, 0.5)

    data.replace_scored_day(conn, SCHEMA, FIRST, chunks())

    for frame in seen:
        pd.testing.assert_frame_equal(frame, old)
    assert sorted(_scores(conn, FIRST)["customer_id"].unique()) == [20, 21, 22, 23]


def _swap_waits(observer: psycopg.Connection) -> bool:
    """Whether a session waits for the ACCESS EXCLUSIVE lock on offer_scores."""
    return observer.execute(
        "select exists (select from pg_locks where relation = %s::regclass and mode = 'AccessExclusiveLock'"
        " and not granted)",
        (sql.Identifier(SCHEMA, "offer_scores").as_string(observer),),
    ).fetchone()[0]


def test_queries_behind_a_waiting_swap_go_on_and_the_swap_ends_when_the_table_is_free(conn, settings, monkeypatch):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    data.replace_scored_day(conn, SCHEMA, FIRST, [_chunk(FIRST, range(1, 4), 0.1)])
    monkeypatch.setattr(data, "SWAP_LOCK_TRY", dt.timedelta(milliseconds=200))
    monkeypatch.setattr(data, "SWAP_LOCK_TRIES", 3)  # then the swap waits without a limit
    scores = sql.Identifier(SCHEMA, "offer_scores")
    failures = []

    def write() -> None:
        with data.connect(settings) as writer:
            try:
                data.replace_scored_day(writer, SCHEMA, FIRST, [_chunk(FIRST, range(30, 32), 0.7)])
            except Exception as error:  # reported to the test's thread
                failures.append(error)

    with data.connect(settings) as holder, data.connect(settings) as later:
        with holder.transaction():  # a long BI query, running when the swap comes
            holder.execute(sql.SQL("lock table {} in access share mode").format(scores))
            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + 30
            while not _swap_waits(later) and time.monotonic() < deadline:
                time.sleep(0.05)
            # a query arriving while the swap tries for its lock is let through between tries
            later.execute("set statement_timeout = '5s'")
            assert later.execute(sql.SQL("select count(*) from {}").format(scores)).fetchone()[0] == 6
            time.sleep(2.0)  # the tries (0.6 s) are spent: the swap now waits for the long query
            assert writer.is_alive()
        writer.join(timeout=30)

    assert not failures and not writer.is_alive()
    assert sorted(_scores(conn, FIRST)["customer_id"].unique()) == [30, 31]


def test_scores_that_break_the_key_fail_the_day_and_keep_the_old_one(conn):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    data.replace_scored_day(conn, SCHEMA, FIRST, [_chunk(FIRST, range(1, 4), 0.1)])
    old = _scores(conn, FIRST)
    once = _chunk(FIRST, range(5, 6), 0.9)
    scores_again = data.ServedChunk(once.scores, once.recommendations.iloc[:0])

    with pytest.raises(psycopg.errors.UniqueViolation, match="offer_scores_2026_06_01_load_pkey"):
        data.replace_scored_day(conn, SCHEMA, FIRST, [once, scores_again])

    pd.testing.assert_frame_equal(_scores(conn, FIRST), old)
    assert _partitions(conn) == [("offer_scores_2026_06_01", "offer_scores_2026_06_01_pkey")]


def test_a_day_of_another_date_cannot_enter_the_partition(conn):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    stray = _chunk(SECOND, range(1, 2), 0.1)

    with pytest.raises(psycopg.errors.CheckViolation, match="score_date_of_partition"):
        data.replace_scored_day(conn, SCHEMA, FIRST, [stray])

    assert _relations_like(conn, "offer_scores_2026%") == []


def test_a_shard_writes_into_the_days_partition_beside_the_other_shards(conn):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    shards = [Shard(index, 2) for index in range(2)]
    customers = range(1, 40)
    rows = _chunk(FIRST, customers, 0.1)
    for shard in shards:
        mine = [c for c in customers if _in_shard(conn, shard, c)]
        part = rows.scores[rows.scores["customer_id"].isin(mine)]
        data.replace_scored_day(
            conn, SCHEMA, FIRST, [data.ServedChunk(part, rows.recommendations.loc[part.index])], shard=shard
        )

    assert sorted(_scores(conn, FIRST)["customer_id"].unique()) == list(customers)
    assert _partitions(conn) == [("offer_scores_2026_06_01", "offer_scores_2026_06_01_pkey")]


def test_a_days_partition_is_created_while_readers_query_the_table(conn, settings):
    data.ensure_ml_tables(conn, SCHEMA, READER)
    with data.connect(settings) as reader, reader.transaction():
        # a BI query still open on the table
        reader.execute(sql.SQL("lock table {} in access share mode").format(sql.Identifier(SCHEMA, "offer_scores")))
        conn.execute("set lock_timeout = '2s'")
        try:
            data.ensure_day_partition(conn, SCHEMA, "offer_scores", FIRST)
        finally:
            conn.execute("reset lock_timeout")

    assert _partitions(conn) == [("offer_scores_2026_06_01", "offer_scores_2026_06_01_pkey")]


def _in_shard(conn: psycopg.Connection, shard: Shard, customer: int) -> bool:
    query = sql.SQL("select {} from (select %s::bigint as customer_id) as c").format(data.shard_filter(shard))
    return conn.execute(query, (customer,)).fetchone()[0]


def test_scores_of_the_unpartitioned_layout_are_moved_into_a_partition_per_day(conn):
    """An offer_scores of the layout before partitions and before its later columns: every row is
    kept, the later columns take their defaults, and nothing of the old table is left."""
    conn.execute(sql.SQL("create schema {}").format(sql.Identifier(SCHEMA)))
    old = sql.Identifier(SCHEMA, "offer_scores")
    conn.execute(
        sql.SQL(
            "create table {} (score_date date not null, customer_id bigint not null, offer_id bigint not null,"
            " model_id text not null, score double precision not null, rank integer not null,"
            " primary key (score_date, customer_id, offer_id))"
        ).format(old)
    )
    rows = "(%s, 1, 7, 'm', 0.5, 1), (%s, 1, 8, 'm', 0.4, 2), (%s, 2, 7, 'm', 0.3, 1)"
    conn.execute(sql.SQL("insert into {} values {}").format(old, sql.SQL(rows)), (FIRST, FIRST, SECOND))

    data.ensure_ml_tables(conn, SCHEMA, READER)
    data.ensure_ml_tables(conn, SCHEMA, READER)  # idempotent

    moved = conn.execute(
        sql.SQL(
            "select score_date, customer_id, offer_id, score, raw_score, ranked_by, variant from {} order by 1, 2, 3"
        ).format(old)
    ).fetchall()
    assert moved == [
        (FIRST, 1, 7, 0.5, None, "model", "treatment"),
        (FIRST, 1, 8, 0.4, None, "model", "treatment"),
        (SECOND, 2, 7, 0.3, None, "model", "treatment"),
    ]
    assert _partitions(conn) == [
        ("offer_scores_2026_06_01", "offer_scores_2026_06_01_pkey"),
        ("offer_scores_2026_06_02", "offer_scores_2026_06_02_pkey"),
    ]
    assert _relations_like(conn, "%unpartitioned%") == []
    # and a day replaced afterwards
    data.replace_scored_day(conn, SCHEMA, SECOND, [_chunk(SECOND, range(3, 4), 0.6)])
    assert _scores(conn, SECOND)["customer_id"].tolist() == [3, 3]
