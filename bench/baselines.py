"""The yardsticks the harness sets beside offerrank's own paths, on the same rows.

pandas through SQLAlchemy (`DataFrame.to_sql`, `read_sql`), the way a data scientist would move
the rows without offerrank; and the physical limits: a bare COPY out whose bytes are only
counted, a bare binary COPY in of a buffer encoded beforehand (by `ml.copy_binary`, the encoder
`data.copy_in` uses, so that only the server's and the wire's work is on the clock), and a bare
`Booster.predict` of rows already in memory. They open their own connections (`data.connect`'s
settings); ml/data.py stays the product's only warehouse I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightgbm as lgb
import numpy as np
import pandas as pd
import psycopg
import sqlalchemy
from psycopg import sql

from ml import copy_binary, data
from ml.config import Settings
from ml.lgbm import LgbmModel
from ml.models import RankingModel

PANDAS_CHUNK_ROWS = 100_000
SEND_BLOCK_BYTES = 8 << 20
PREDICT_THREADS = 2  # the machine's cores, as the figures assume


@contextmanager
def sqlalchemy_engine(settings: Settings) -> Iterator[sqlalchemy.Engine]:
    """An engine on the warehouse through psycopg, whose connections come from the settings (no URL
    holding a password)."""
    conninfo = settings.database.conninfo()
    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo))
    try:
        yield engine
    finally:
        engine.dispose()


def to_sql(engine: sqlalchemy.Engine, schema: str, table: str, frame: pd.DataFrame) -> int:
    """Append `frame` with pandas' own writer (its default: batched INSERTs); returns the rows written."""
    frame.to_sql(table, engine, schema=schema, if_exists="append", index=False)
    return len(frame)


def read_sql(engine: sqlalchemy.Engine, query: str) -> int:
    """Every row of `query` through pandas, streamed from a server-side cursor in DataFrames of
    PANDAS_CHUNK_ROWS (reading 5M rows at once would hold them all as Python objects); returns the rows."""
    rows = 0
    with engine.connect() as conn:
        streaming = conn.execution_options(stream_results=True)
        for frame in pd.read_sql(query, streaming, chunksize=PANDAS_CHUNK_ROWS):
            rows += len(frame)
    return rows


def copy_out_bytes(conn: psycopg.Connection, query: sql.Composable, params: tuple[object, ...]) -> int:
    """The bytes of `query`'s rows in binary COPY, received and counted, nothing else: the read's limit."""
    statement = sql.SQL("copy ({}) to stdout (format binary)").format(query)
    received = 0
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        for block in copy:
            received += len(block)
    return received


def booster_matrix(model: LgbmModel, frame: pd.DataFrame) -> np.ndarray:
    """The rows of `frame` as the float64 matrix LightGBM predicts from: numeric features as they
    are, each categorical one as its code in the model's vocabulary (NaN when unseen or null)."""
    inputs = model.features.frame(frame)
    # LightGBM's vocabularies follow the categorical features in the model's feature order
    categorical = [name for name in model.features.names if name in model.features.categorical]
    vocabularies = dict(zip(categorical, model.booster.pandas_categorical or [], strict=True))
    for name, vocabulary in vocabularies.items():
        codes = pd.Index(vocabulary).get_indexer(inputs[name]).astype(np.float64)
        inputs[name] = np.where(codes < 0, np.nan, codes)
    return np.ascontiguousarray(inputs.to_numpy(dtype=np.float64))


def bare_predict(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """The model alone: raw scores of rows already in memory, on PREDICT_THREADS threads."""
    return booster.predict(matrix, raw_score=True, num_threads=PREDICT_THREADS)


def model_inputs(model: RankingModel, frame: pd.DataFrame) -> tuple[np.ndarray | pd.DataFrame, str]:
    """What the bare prediction of `model` starts from, and the method's name: a LightGBM model's
    matrix (`booster_matrix`), or, for logistic regression, the frame (its own `raw_scores`)."""
    if isinstance(model, LgbmModel):
        return booster_matrix(model, frame), "bare_booster_predict"
    return frame, "bare_model_predict"


def predict(model: RankingModel, inputs: np.ndarray | pd.DataFrame) -> np.ndarray:
    """The bare prediction of `model_inputs`."""
    if isinstance(model, LgbmModel):
        return bare_predict(model.booster, inputs)
    return model.raw_scores(inputs)


def binary_copy_payload(conn: psycopg.Connection, table: sql.Identifier, frame: pd.DataFrame) -> bytes:
    """`frame`'s rows as one binary COPY stream for `table`'s column types, encoded in memory."""
    columns = sql.SQL(", ").join(map(sql.Identifier, frame.columns))
    blocks = copy_binary.encode(frame, data.column_types(conn, table, columns), encoding=conn.info.encoding)
    if blocks is None:
        raise ValueError(f"the columns of {', '.join(frame.columns)} have a type binary COPY is not encoded for")
    return b"".join(blocks)


def send_binary_copy(conn: psycopg.Connection, table: sql.Identifier, columns: list[str], payload: bytes) -> None:
    """COPY a `binary_copy_payload` of `columns` into `table`: the server's and the wire's work alone."""
    statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    view = memoryview(payload)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(view), SEND_BLOCK_BYTES):
            copy.write(view[start : start + SEND_BLOCK_BYTES])
