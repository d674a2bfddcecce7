"""COPY in and out, the raw contract and the registry, against the embedded server."""

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from ml import copy_binary, data
from tests.conftest import use_database


@pytest.fixture(scope="module")
def conn(server):
    settings = use_database(server, "data_io")
    with data.connect(settings) as connection:
        data.ensure_ml_tables(connection, settings.ml_schema, settings.reader_role)
        yield connection


def test_copy_round_trip_keeps_types_and_nulls(conn):
    frame = pd.DataFrame(
        {
            "id": np.arange(5, dtype=np.int64),
            "x": [0.5, None, 2.25, 1e-9, -3.0],
            "name": ["a", "b,c", 'quote"d', None, ""],
            "flag": [True, False, True, False, True],
            "day": [dt.date(2026, 1, d) for d in range(1, 6)],
        }
    )
    conn.execute("create temporary table round_trip (id bigint, x float8, name text, flag boolean, day date)")
    assert data.copy_in(conn, sql.Identifier("round_trip"), frame) == 5
    back = data.copy_out(conn, sql.SQL("select * from round_trip order by id"))
    assert back["id"].tolist() == list(range(5))
    assert back["x"].iloc[1] != back["x"].iloc[1]  # NaN for the null
    assert back["name"].tolist()[:3] == ["a", "b,c", 'quote"d']
    assert back["flag"].tolist() == frame["flag"].tolist()
    assert back["day"].tolist() == frame["day"].tolist()


_EVERY_TYPE = (
    "id int8, small int2, medium int4, big int8, maybe_int int8, x float8, ratio float8, count_as_float float8,"
    " flag bool, maybe_flag bool, name text, code varchar(8), day date, at timestamptz, at_ms timestamptz,"
    " local_at timestamp"
)


def _every_type_frame(rows: int) -> pd.DataFrame:
    """Every column type the binary encoder takes, with nulls, NaN, infinities, unicode, empty
    texts, extreme integers, zoned timestamps in another zone and days before 2000."""
    rng = np.random.default_rng(7)
    at = pd.Series(pd.date_range("1999-12-31 22:00", periods=rows, freq="37min", tz="Europe/Paris", unit="ns"))
    frame = pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "small": rng.integers(-(2**15), 2**15, rows).astype(np.int16),
            "medium": rng.integers(-(2**31), 2**31, rows).astype(np.int32),
            "big": np.resize(np.array([2**63 - 1, -(2**63), 0, 42], dtype=np.int64), rows),
            "maybe_int": pd.array(np.resize([1, None, -(2**40)], rows), dtype="Int64"),
            "x": np.resize([0.1, np.nan, np.inf, -np.inf, -0.0, 1e-310, 5e300], rows),
            "ratio": pd.array(np.resize([0.25, None], rows), dtype="Float64"),
            "count_as_float": np.arange(rows, dtype=np.int32),
            "flag": np.resize([True, False, False], rows),
            "maybe_flag": pd.array(np.resize([True, None, False], rows), dtype="boolean"),
            "name": np.resize(
                np.array(["a", "b,c", 'quote"d', None, "", "naïve ünïcode ✓ 北京", "\\N", "x\ny"], dtype=object), rows
            ),
            "code": pd.array(np.resize(["AB", None, "ÉÉ"], rows), dtype="string"),
            "day": np.resize(
                np.array([dt.date(2026, 1, 5), None, dt.date(1970, 1, 1), dt.date(2000, 1, 1)], dtype=object), rows
            ),
            "at": at.where(np.arange(rows) % 5 != 1),
            "at_ms": at.dt.tz_convert("UTC").astype("datetime64[ms, UTC]"),
            "local_at": at.dt.tz_localize(None).astype("datetime64[us]"),
        }
    )
    return frame


def _one_layout_frame(rows: int) -> pd.DataFrame:
    """No nulls and texts of one length per column, as a chunk of scores: every row has one layout."""
    frame = _every_type_frame(rows)
    return frame.assign(
        x=np.linspace(-1, 1, rows),
        maybe_int=frame["big"],
        ratio=0.5,
        maybe_flag=frame["flag"],
        name=np.resize(np.array(["ünï", "abcde"], dtype=object), rows),  # 5 bytes each in UTF-8
        code="model",
        day=dt.date(2026, 6, 1),
        at=frame["at_ms"],
    )


@pytest.mark.parametrize(("rows", "layout"), [(1, "varied"), (7, "varied"), (2_500, "varied"), (2_500, "one")])
def test_binary_copy_in_stores_the_rows_csv_stores(conn, rows, layout, monkeypatch):
    # small blocks, so that rows cross block boundaries; every column goes binary (checked), and
    # the rows read back equal those of the CSV path, nulls and NaN (stored as null) included
    monkeypatch.setattr(data, "COPY_CHUNK_ROWS", 1000)
    monkeypatch.setattr(data, "BINARY_BLOCK_ROWS", 1000)
    frame = _every_type_frame(rows) if layout == "varied" else _one_layout_frame(rows)
    conn.execute(f"create temporary table by_binary ({_EVERY_TYPE})")
    conn.execute(f"create temporary table by_csv ({_EVERY_TYPE})")
    types = data.column_types(conn, sql.Identifier("by_binary"), sql.SQL("*"))
    assert copy_binary.encode(frame, types) is not None
    assert data.copy_in(conn, sql.Identifier("by_binary"), frame) == rows
    assert data.copy_in(conn, sql.Identifier("by_csv"), frame, binary=False) == rows
    binary = conn.execute("select * from by_binary order by id").fetchall()
    csv = conn.execute("select * from by_csv order by id").fetchall()
    assert len(binary) == rows and binary == csv  # NaN-free: stored as null
    conn.execute("drop table by_binary, by_csv")


def test_copy_in_falls_back_to_csv_where_binary_cannot_say_the_same(conn):
    # an int4 column given a value out of its range: CSV lets the server refuse it (binary would wrap)
    conn.execute("create temporary table narrow (n int4, v numeric(6, 2))")
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        data.copy_in(conn, sql.Identifier("narrow"), pd.DataFrame({"n": [2**40], "v": [1.5]}))
    # a float32 column: CSV writes its shortest decimal, which float8 reads as another number
    conn.execute("create temporary table wide (x float8)")
    types = data.column_types(conn, sql.Identifier("wide"), sql.SQL("*"))
    assert copy_binary.encode(pd.DataFrame({"x": np.array([0.1], dtype=np.float32)}), types) is None
    conn.execute("drop table wide")
    # numeric has no binary encoder: CSV, same value
    data.copy_in(conn, sql.Identifier("narrow"), pd.DataFrame({"n": [3], "v": [1.25]}))
    assert conn.execute("select n, v::text from narrow").fetchall() == [(3, "1.25")]
    conn.execute("drop table narrow")


def test_streamed_copy_out_yields_bounded_blocks_in_order(conn):
    query = sql.SQL("select g as id, g * 0.5 as half from generate_series(1, 200000) g order by g")
    blocks = list(data.iter_copy_out(conn, query, block_bytes=256 << 10))
    assert len(blocks) > 5
    assert pd.concat(blocks)["id"].tolist() == list(range(1, 200001))


def test_empty_result_has_its_columns(conn):
    empty = data.copy_out(conn, sql.SQL("select 1::bigint as a, 'x'::text as b where false"))
    assert list(empty.columns) == ["a", "b"] and empty.empty


def _record(model_id: str) -> data.ModelRecord:
    day = dt.date(2026, 6, 1)
    return data.ModelRecord(
        model_id=model_id, algorithm="lgbm_binary", trained_for_date=day, features=["f1", "f2"], params={"a": 1},
        train_start_date=day, train_end_date=day, valid_start_date=day, valid_end_date=day,
        metrics={"roc_auc": 0.7}, model_text="tree",
    )  # fmt: skip


def _statuses(conn, schema: str) -> dict[str, str]:
    return dict(
        conn.execute(
            sql.SQL("select model_id, status from {}").format(sql.Identifier(schema, "model_registry"))
        ).fetchall()
    )


def test_promotion_keeps_exactly_one_champion_and_its_history(conn, server):
    schema = server.ml_schema
    for model_id in ("m1", "m2"):
        data.register_model(conn, schema, _record(model_id))
    assert data.promote_model(conn, schema, "m1", reason="first")
    assert data.promote_model(conn, schema, "m2", reason="better", run_date=dt.date(2026, 6, 2))
    assert not data.promote_model(conn, schema, "m2", reason="again")  # already champion: nothing changes
    assert _statuses(conn, schema) == {"m1": "retired", "m2": "champion"}
    assert data.champion_model(conn, schema).model_id == "m2"
    history = data.promotion_history(conn, schema)
    assert history[["model_id", "previous_model_id", "action", "reason"]].values.tolist() == [
        ["m1", None, "promote", "first"],
        ["m2", "m1", "promote", "better"],
    ]
    with pytest.raises(LookupError):
        data.promote_model(conn, schema, "no-such-model", reason="x")
    with pytest.raises(ValueError, match="action"):
        data.promote_model(conn, schema, "m1", action="crown", reason="x")
    # The database itself refuses a second champion.
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            sql.SQL("update {} set status = 'champion' where model_id = 'm1'").format(
                sql.Identifier(schema, "model_registry")
            )
        )


# Runs `promote_model` in another process and SIGKILLs it after its last statement, before commit.
CRASHING_PROMOTION = """
import os, signal, sys
import psycopg
from ml import copy_binary, data
from ml.config import load_settings

execute = psycopg.Connection.execute
def execute_then_die(self, query, *args, **kwargs):
    result = execute(self, query, *args, **kwargs)
    if "model_promotions" in query.as_string(self):
        os.kill(os.getpid(), signal.SIGKILL)
    return result
psycopg.Connection.execute = execute_then_die
settings = load_settings()
with data.connect(settings) as conn:
    data.promote_model(conn, sys.argv[1], sys.argv[2], reason="crash")
"""


def test_a_promotion_killed_before_commit_leaves_the_old_champion(conn, server, monkeypatch):
    schema = server.ml_schema
    data.register_model(conn, schema, _record("m3"))
    before = (_statuses(conn, schema), data.promotion_history(conn, schema))
    monkeypatch.setenv("PGDATABASE", conn.info.dbname)
    result = subprocess.run([sys.executable, "-c", CRASHING_PROMOTION, schema, "m3"], env=os.environ, check=False)
    assert result.returncode == -signal.SIGKILL
    assert _statuses(conn, schema) == before[0]
    pd.testing.assert_frame_equal(data.promotion_history(conn, schema), before[1])


def test_an_eval_metrics_table_of_the_old_layout_is_kept_aside(conn):
    schema = "old_layout"
    conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "create table {} (model_id text, evaluated_model_id text, split text, metric text, k int, value float8,"
            " n_rows bigint, n_groups bigint)"
        ).format(sql.Identifier(schema, "eval_metrics"))
    )
    conn.execute(
        sql.SQL("insert into {} values ('m', 'm', 'valid', 'roc_auc', null, 0.7, 10, null)").format(
            sql.Identifier(schema, "eval_metrics")
        )
    )
    data.ensure_ml_tables(conn, schema, "offerrank_reader")
    data.ensure_ml_tables(conn, schema, "offerrank_reader")  # idempotent
    kept = conn.execute(
        sql.SQL("select model_id, value from {}").format(sql.Identifier(schema, "eval_metrics_by_model"))
    )
    assert kept.fetchall() == [("m", 0.7)]
    assert data.validation_metrics(conn, schema, dt.date(2026, 6, 1)) == {}


def test_failed_stage_is_logged_with_its_error(conn, server):
    with pytest.raises(RuntimeError), data.recorded_stage(conn, server.ml_schema, "run-1", "score") as log:
        log.run_date = dt.date(2026, 6, 1)
        raise RuntimeError("boom")
    status, message, run_date = conn.execute(
        sql.SQL("select status, message, run_date from {} where run_id = 'run-1'").format(
            sql.Identifier(server.ml_schema, "pipeline_runs")
        )
    ).fetchone()
    assert (status, run_date) == ("failed", dt.date(2026, 6, 1))
    assert "boom" in message


def test_raw_load_is_all_or_nothing(conn, server, generated_data):
    data.replace_raw_tables(conn, server.raw_schema, generated_data)
    broken = dict(generated_data)
    broken["redemptions"] = pd.concat([generated_data["redemptions"]] * 2)  # duplicate primary keys
    with pytest.raises(psycopg.errors.UniqueViolation):
        data.replace_raw_tables(conn, server.raw_schema, broken)
    for table, frame in generated_data.items():
        count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(server.raw_schema, table)))
        assert count.fetchone()[0] == len(frame), table


def _candidates(conn) -> pd.DataFrame:
    """A small candidates relation over two dates, with a numeric, integer, boolean and text
    feature and nulls in each."""
    rng = np.random.default_rng(11)
    rows = 300
    frame = pd.DataFrame(
        {
            "as_of_date": [dt.date(2026, 6, 1)] * rows,
            "customer_id": rng.permutation(rows) + 1000,
            "offer_id": rng.integers(1, 9, rows),
            "amount": np.round(rng.normal(50, 20, rows), 2),
            "days": rng.integers(0, 30, rows).astype(float),
            "flag": rng.random(rows) < 0.3,
            "segment": rng.choice(["retail", "horeca", "office"], rows).astype(object),
        }
    )
    frame.loc[::7, "amount"] = None
    frame.loc[::5, "days"] = None
    frame["flag"] = frame["flag"].astype(object)
    frame.loc[::11, "flag"] = None
    frame.loc[::13, "segment"] = None
    later = frame.head(40).assign(as_of_date=dt.date(2026, 6, 2))
    conn.execute(
        "create temporary table candidates (as_of_date date, customer_id bigint, offer_id bigint,"
        " amount numeric(10, 2), days integer, flag boolean, segment text)"
    )
    data.copy_in(conn, sql.Identifier("candidates"), pd.concat([frame, later]).astype({"days": "Int64"}))
    return frame


def _as_list(values: pd.Series) -> list:
    return [None if pd.isna(value) else value for value in values]


def test_drift_reference_keeps_the_md5_sample_of_a_date_in_order_and_nulls(conn, server):
    frame = _candidates(conn)
    schema, candidates, keys = server.ml_schema, sql.Identifier("candidates"), ["customer_id", "offer_id"]
    features, categorical = ["amount", "days", "flag", "segment"], ["segment"]
    first, second = dt.date(2026, 6, 1), dt.date(2026, 6, 2)

    def store(day: dt.date, rows: int) -> int:
        return data.replace_drift_reference(conn, schema, candidates, day, features, categorical, (keys, rows))

    assert store(first, 100) == 4 and store(second, 100) == 4
    # the sample: the 100 pairs with the smallest md5 of 'customer_id|offer_id', in that order
    digest = [hashlib.md5(f"{c}|{o}".encode()).hexdigest() for c, o in frame[keys].itertuples(index=False)]
    expected = frame.assign(digest=digest).sort_values(["digest", *keys]).head(100)
    reference = data.read_drift_reference(conn, schema, first, features)
    assert reference.columns.tolist() == features and len(reference) == 100
    for name in ("amount", "days"):
        assert _as_list(reference[name]) == _as_list(expected[name].astype(float))
    assert _as_list(reference["flag"]) == _as_list(expected["flag"].map({True: 1.0, False: 0.0}))
    assert _as_list(reference["segment"]) == _as_list(expected["segment"])
    assert reference.isna().any().all()  # the nulls came back as nulls in every feature
    # the same rows as the sample `read_relation` reads today's candidates with
    current = data.read_relation(
        conn, candidates, [*keys, *features], where=sql.SQL("as_of_date = %s"), params=(first,), sample=(keys, 100)
    )
    assert sorted(current[keys].values.tolist()) == sorted(expected[keys].values.tolist())

    stored = data.copy_out(
        conn,
        sql.SQL(
            "select reference_date, feature, kind, n_rows, cardinality(numeric_values) as numeric_length,"
            " cardinality(categorical_values) as categorical_length from {} order by reference_date, feature"
        ).format(sql.Identifier(schema, "drift_reference")),
    )
    assert stored[stored["reference_date"] == first][["feature", "kind", "n_rows"]].values.tolist() == [
        ["amount", "numeric", 100], ["days", "numeric", 100], ["flag", "numeric", 100], ["segment", "categorical", 100],
    ]  # fmt: skip
    assert (stored["numeric_length"].fillna(stored["categorical_length"]) == stored["n_rows"]).all()
    assert set(stored.loc[stored["reference_date"] == second, "n_rows"]) == {40}

    # Replacing a date replaces only its rows; a date without candidates has no reference.
    assert store(first, 1_000) == 4
    assert len(data.read_drift_reference(conn, schema, first, features)) == 300
    assert len(data.read_drift_reference(conn, schema, second, ["flag", "segment"]).columns) == 2
    conn.execute("delete from candidates where as_of_date = %s", (second,))
    assert store(second, 100) == 0
    assert data.read_drift_reference(conn, schema, second, features) is None
    assert data.read_drift_reference(conn, schema, first, ["not_stored"]) is None
