"""COPY in and out, the raw contract and the registry, against the embedded server."""

import datetime as dt

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from ml import data
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


def test_promotion_keeps_exactly_one_champion(conn, server):
    schema = server.ml_schema
    for model_id in ("m1", "m2"):
        data.register_model(conn, schema, _record(model_id))
    data.promote_model(conn, schema, "m1")
    data.promote_model(conn, schema, "m2")
    statuses = dict(
        conn.execute(
            sql.SQL("select model_id, status from {}").format(sql.Identifier(schema, "model_registry"))
        ).fetchall()
    )
    assert statuses == {"m1": "retired", "m2": "champion"}
    assert data.champion_model(conn, schema).model_id == "m2"
    with pytest.raises(LookupError):
        data.promote_model(conn, schema, "no-such-model")
    # The database itself refuses a second champion.
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            sql.SQL("update {} set status = 'champion' where model_id = 'm1'").format(
                sql.Identifier(schema, "model_registry")
            )
        )


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
