"""The only warehouse I/O of offerrank: connections, COPY in and out, and the `ml` output tables.

Rows move with COPY, no row-by-row inserts: in as PostgreSQL's binary format where every column
has a vectorised encoder (ml/copy_binary.py), else as CSV serialised by pyarrow; out as CSV
parsed by pyarrow.
Every identifier that comes from configuration is quoted with psycopg's `sql` module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd
import psycopg
import psycopg.rows
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ml import copy_binary
from ml.config import Settings, Shard
from ml.contract import RAW_CONTRACT, Contract, Table
from ml.contract import ddl as contract_ddl
from ml.evaluate import metric_label

COPY_CHUNK_ROWS = 500_000
# Rows per block of a binary COPY: the server takes in one block while the next is encoded (in the
# same rounds, blocks of 50,000 rows of scores went at 84-101 % of a bare binary COPY, of 500,000 at
# 82-99 %: docs/performance.md).
BINARY_BLOCK_ROWS = 50_000
# The day's swap of offer_scores needs the table to itself, and queries that arrive while it waits
# for running ones queue behind it: it tries SWAP_LOCK_TRIES times, each try given up after
# SWAP_LOCK_TRY so that those queries go on, and only then waits as long as it takes.
SWAP_LOCK_TRIES = 30
SWAP_LOCK_TRY = dt.timedelta(seconds=1)

QueryParams = Sequence[object] | Mapping[str, object] | None


def connect(settings: Settings) -> psycopg.Connection:
    """Open an autocommit connection to the warehouse; group writes with `conn.transaction()`."""
    try:
        return psycopg.connect(settings.database.conninfo(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as err:
        hint = " Start it with `offerrank db start`." if settings.database.embedded else ""
        raise ConnectionError(f"cannot reach the warehouse at {settings.database.describe()}.{hint}") from err


def create_database(settings: Settings) -> None:
    """Create the configured database on its server if it does not exist yet."""
    db = settings.database
    with psycopg.connect(db.conninfo(dbname="postgres"), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (db.dbname,)).fetchone() is None:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(db.dbname)))


# The first key of offerrank's advisory locks; the second is derived from the ml schema's name,
# so two deployments in one database (different ml schemas) do not wait for each other.
_LOCK_NAMESPACE = 0x6F66_6672  # "offr"


class WarehouseBusyError(RuntimeError):
    """Another run holds the warehouse lock for longer than this run would wait."""


@contextmanager
def warehouse_lock(
    settings: Settings, holder: str, wait_seconds: float, *, shared: bool = False
) -> Iterator[psycopg.Connection]:
    """Hold the run lock of this warehouse (its ml schema) for the block: one run at a time.

    A run rebuilds the marts for its date and replaces that date's outputs, so two runs at once,
    of one date or two, would interleave. The lock is a session advisory lock on a connection of
    its own named `holder`: the server frees it when the run ends, however it ends (a killed
    process included). A second run waits up to `wait_seconds`, then raises WarehouseBusyError
    naming the run that holds it.

    `shared`: the runs of the sharded scoring job, which only read the marts and replace their own
    customers' rows, hold it in shared mode: they run beside one another, never beside a daily run.
    """
    conninfo = make_conninfo(settings.database.conninfo(), application_name=holder[:63])
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError:
        connect(settings)  # raises the clear ConnectionError
        raise
    key = (_LOCK_NAMESPACE, settings.ml_schema)
    mode = "_shared" if shared else ""
    with conn:
        acquired = conn.execute(f"select pg_try_advisory_lock{mode}(%s, hashtext(%s))", key).fetchone()[0]
        if not acquired:
            try:
                conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(f"{int(wait_seconds * 1000)}ms")))
                if wait_seconds > 0:
                    conn.execute(f"select pg_advisory_lock{mode}(%s, hashtext(%s))", key)
                    acquired = True
            except psycopg.errors.LockNotAvailable:
                pass
            if not acquired:
                holder = run_lock_holder(conn, settings.ml_schema) or "a run that has just finished"
                raise WarehouseBusyError(
                    f"another offerrank run holds the warehouse ({settings.database.describe()}, ml schema"
                    f" {settings.ml_schema!r}): {holder}. Waited {wait_seconds:g} s"
                    " (OFFERRANK_LOCK_WAIT_SECONDS); run again once it has finished."
                )
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.execute(f"select pg_advisory_unlock{mode}(%s, hashtext(%s))", key)


def run_lock_holder(conn: psycopg.Connection, ml_schema: str) -> str | None:
    """Who holds the run lock of `ml_schema` in this database (its connection's name, server pid
    and start), or None when no run does."""
    row = conn.execute(
        "select activity.application_name, activity.pid, activity.backend_start"
        " from pg_locks as locks inner join pg_stat_activity as activity on locks.pid = activity.pid"
        " where locks.locktype = 'advisory' and locks.granted and locks.classid = %s::oid"
        " and locks.objid = hashtext(%s)::oid and locks.database = (select oid from pg_database"
        " where datname = current_database())",
        (_LOCK_NAMESPACE, ml_schema),
    ).fetchone()
    if row is None:
        return None
    name, pid, since = row
    return f"{name} (server pid {pid}, since {since:%Y-%m-%d %H:%M:%S %Z})"


def _sql_file(name: str) -> str:
    """The text of `ml/sql/<name>`, placeholders and all."""
    return resources.files("ml").joinpath("sql", name).read_text()


def _ddl(name: str, schema: str, **identifiers: str) -> sql.Composed:
    """The SQL file `ml/sql/<name>` with `{schema}` and any other `{placeholder}` filled in, quoted."""
    names = {"schema": schema, **identifiers}
    return sql.SQL(_sql_file(name)).format(**{key: sql.Identifier(value) for key, value in names.items()})


def copy_in(conn: psycopg.Connection, table: sql.Composable, frame: pd.DataFrame, *, binary: bool = True) -> int:
    """Append `frame` to `table` with COPY (columns matched by name); returns the row count.

    Rows go in PostgreSQL's binary format where `ml.copy_binary` encodes every column for its
    type (the ml tables' scores, ranks, ids, texts and dates), else (or with `binary` False) as
    CSV: the same rows either way.
    """
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    blocks = None
    if binary:
        types = column_types(conn, table, columns)
        blocks = copy_binary.encode(frame, types, encoding=conn.info.encoding, rows_per_block=BINARY_BLOCK_ROWS)
    if blocks is None:
        blocks = _csv_blocks(frame)
        statement = sql.SQL("copy {} ({}) from stdin with (format csv)").format(table, columns)
    else:
        statement = sql.SQL("copy {} ({}) from stdin with (format binary)").format(table, columns)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for block in blocks:
            copy.write(block)
    return len(frame)


def column_types(conn: psycopg.Connection, table: sql.Composable, columns: sql.Composable) -> list[str]:
    """The type of each of `columns` of `table`, as psycopg names it (int8, text, ...; '' if unknown)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("select {} from {} limit 0").format(columns, table))
        types = [conn.adapters.types.get(column.type_code) for column in cur.description]
    return [kind.name if kind is not None else "" for kind in types]


def _csv_blocks(frame: pd.DataFrame) -> Iterator[memoryview]:
    options = pa_csv.WriteOptions(include_header=False)
    for start in range(0, len(frame), COPY_CHUNK_ROWS):
        chunk = pa.Table.from_pandas(frame.iloc[start : start + COPY_CHUNK_ROWS], preserve_index=False)
        buffer = io.BytesIO()
        pa_csv.write_csv(chunk, buffer, options)
        yield buffer.getbuffer()


_ARROW_TYPES = {
    "int2": pa.int64(),
    "int4": pa.int64(),
    "int8": pa.int64(),
    "float4": pa.float64(),
    "float8": pa.float64(),
    "numeric": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
}


def _arrow_schema(conn: psycopg.Connection, query: sql.Composable, params: QueryParams) -> dict[str, pa.DataType]:
    """Column types of `query`'s result, so that streamed CSV blocks parse the same way."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("select * from ({}) as described limit 0").format(query), params)
        types = {}
        for column in cur.description:
            type_name = conn.adapters.types.get(column.type_code)
            types[column.name] = _ARROW_TYPES.get(type_name.name if type_name else "", pa.string())
        return types


def iter_copy_out(
    conn: psycopg.Connection, query: sql.Composable, params: QueryParams = None, *, block_bytes: int = 8 << 20
) -> Iterator[pd.DataFrame]:
    """Stream `query`'s rows as DataFrames of about `block_bytes` of CSV each: memory stays bounded.

    The server sends each row of a COPY TO as one message (PostgreSQL's protocol says so of
    CopyData from the backend), so a block of whole messages is whole rows: each block is parsed
    at once by pyarrow's multi-threaded reader. (Parsing as the rows arrive, through a file-like
    reader that pyarrow's threads call back into Python for, took twice as long.)
    """
    types = _arrow_schema(conn, query, params)
    statement = sql.SQL("copy ({}) to stdout with (format csv)").format(query)
    read_options = pa_csv.ReadOptions(column_names=list(types))
    convert_options = pa_csv.ConvertOptions(
        column_types=types, strings_can_be_null=True, true_values=["t"], false_values=["f"]
    )

    def parsed(block: bytearray) -> pd.DataFrame:
        return pa_csv.read_csv(pa.py_buffer(block), read_options, convert_options=convert_options).to_pandas()

    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        block = bytearray()
        for row in copy:
            block += row
            if len(block) >= block_bytes:
                yield parsed(block)
                block = bytearray()
        if block:
            yield parsed(block)


def copy_out(conn: psycopg.Connection, query: sql.Composable, params: QueryParams = None) -> pd.DataFrame:
    """Run `query` and return all its rows as one DataFrame, moved with COPY."""
    frames = list(iter_copy_out(conn, query, params))
    if not frames:
        types = _arrow_schema(conn, query, params)
        return pd.DataFrame({name: pd.Series(dtype=arrow_type.to_pandas_dtype()) for name, arrow_type in types.items()})
    return pd.concat(frames, ignore_index=True)


# --- raw data -------------------------------------------------------------------------------------


def replace_raw_tables(
    conn: psycopg.Connection, schema: str, frames: Mapping[str, pd.DataFrame], contract: Contract = RAW_CONTRACT
) -> dict[str, int]:
    """Replace the contents of every raw table of `contract` with `frames`, in one transaction.

    `frames` holds every required table and any optional ones; an absent optional table is left
    empty, and an optional column absent from a frame is loaded as null (COPY names the columns).
    A table whose columns differ from the contract is dropped (with the views on it) and recreated.
    Returns the row count of every table.
    """
    unknown = sorted(set(frames) - set(contract.table_names))
    missing = sorted(table.name for table in contract.tables if table.required and table.name not in frames)
    if unknown or missing:
        raise ValueError(f"raw tables not in the contract: {unknown}; required tables missing: {missing}")
    for name, frame in frames.items():
        table = contract.table(name)
        extra = sorted(set(frame.columns) - set(table.column_names))
        absent = sorted(c.name for c in table.columns if c.required and c.name not in frame.columns)
        if extra or absent:
            raise ValueError(f"{name}: columns not in the contract: {extra}; required columns missing: {absent}")
    counts: dict[str, int] = {}
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        for table in contract.tables:
            existing = _column_signature(conn, schema, table.name)
            if existing and existing != _contract_signature(table):
                # A table of an older contract is rebuilt; the staging views on it go with it and
                # the next dbt run recreates them.
                conn.execute(sql.SQL("drop table {} cascade").format(sql.Identifier(schema, table.name)))
        conn.execute(sql.SQL(contract_ddl(contract)).format(schema=sql.Identifier(schema)))
        targets = [sql.Identifier(schema, name) for name in contract.table_names]
        conn.execute(sql.SQL("truncate {}").format(sql.SQL(", ").join(targets)))
        for table, target in zip(contract.tables, targets, strict=True):
            frame = frames.get(table.name)
            counts[table.name] = 0 if frame is None else copy_in(conn, target, frame)
    for target in targets:
        conn.execute(sql.SQL("analyze {}").format(target))
    return counts


def clear_truth_tables(conn: psycopg.Connection, schema: str = "truth") -> list[str]:
    """Empty every table of the simulator's truth schema, if there is one; returns their names.

    A user's own raw data must never sit next to the ground truth of an earlier simulation."""
    tables = [
        name
        for (name,) in conn.execute(
            "select table_name from information_schema.tables"
            " where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
            (schema,),
        ).fetchall()
    ]
    if tables:
        conn.execute(sql.SQL("truncate {}").format(sql.SQL(", ").join(sql.Identifier(schema, name) for name in tables)))
    return tables


# The tables of ml/sql/truth_tables.sql.
TRUTH_TABLES = ("impression_outcomes", "generator_params", "pending_redemptions", "simulated_days")


def replace_truth_tables(conn: psycopg.Connection, schema: str, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Replace the simulator's ground truth with `frames`, in one transaction; returns row counts.
    A truth table not in `frames` is left empty: no closed-loop state outlives the data it was for."""
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        # Truth is rewritten whole and nothing depends on it: recreating it keeps its layout current.
        for name in dict.fromkeys([*TRUTH_TABLES, *frames]):
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, name)))
        conn.execute(_ddl("truth_tables.sql", schema))
        counts = {name: copy_in(conn, sql.Identifier(schema, name), frame) for name, frame in frames.items()}
    return counts


# --- the closed loop (ml/closed_loop.py) ---------------------------------------------------------


def relation_exists(conn: psycopg.Connection, relation: sql.Composable) -> bool:
    """Whether the table or view `relation` exists."""
    return conn.execute("select to_regclass(%s)", (relation.as_string(conn),)).fetchone()[0] is not None


def read_generator_params(conn: psycopg.Connection, truth_schema: str) -> dict[str, object] | None:
    """The parameters `offerrank generate` stored (truth.generator_params), or None: data that the
    generator did not make (or made before it stored them)."""
    table = sql.Identifier(truth_schema, "generator_params")
    if not relation_exists(conn, table):
        return None
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(sql.SQL("select * from {}").format(table)).fetchall()
    return rows[0] if len(rows) == 1 else None


def last_simulated_day(conn: psycopg.Connection, truth_schema: str) -> dt.date | None:
    """The latest day the closed loop simulated; None before the first."""
    return conn.execute(
        sql.SQL("select max(simulated_on) from {}").format(sql.Identifier(truth_schema, "simulated_days"))
    ).fetchone()[0]


def raw_row_counts(conn: psycopg.Connection, raw_schema: str) -> dict[str, int]:
    """The largest id of each raw table the closed loop appends to (ids run from 1 without gaps)."""
    keys = {"orders": "order_id", "offers": "offer_id", "impressions": "impression_id",
            "redemptions": "redemption_id", "interaction_events": "event_id"}  # fmt: skip
    query = sql.SQL(", ").join(
        sql.SQL("(select coalesce(max({}), 0) from {})").format(sql.Identifier(key), sql.Identifier(raw_schema, table))
        for table, key in keys.items()
    )
    return dict(zip(keys, conn.execute(sql.SQL("select {}").format(query)).fetchone(), strict=True))


def read_loop_state(
    conn: psycopg.Connection, raw_schema: str, truth_schema: str, ml_schema: str, score_date: dt.date
) -> dict[str, pd.DataFrame]:
    """What a simulated day depends on: `served` (the day's ml.recommendations: customer_id,
    offer_id, rank), `redeemed` (the customer_id, offer_id pairs of raw.redemptions) and
    `pending` (truth.pending_redemptions)."""
    return {
        "served": copy_out(
            conn,
            sql.SQL("select customer_id, offer_id, rank from {} where score_date = %s").format(
                sql.Identifier(ml_schema, "recommendations")
            ),
            (score_date,),
        ),
        "redeemed": copy_out(
            conn,
            sql.SQL("select distinct customer_id, offer_id from {}").format(sql.Identifier(raw_schema, "redemptions")),
        ),
        "pending": copy_out(
            conn,
            sql.SQL("select customer_id, offer_id, impression_id, redeemed_at from {}").format(
                sql.Identifier(truth_schema, "pending_redemptions")
            ),
        ),
    }


def served_variant_mix(conn: psycopg.Connection, ml_schema: str, score_date: dt.date) -> dict[str, int]:
    """Customers with recommendations on one day, per experiment variant."""
    query = sql.SQL("select variant, count(distinct customer_id) from {} where score_date = %s group by 1 order by 1")
    rows = conn.execute(query.format(sql.Identifier(ml_schema, "recommendations")), (score_date,)).fetchall()
    return {str(variant): count for variant, count in rows}


def append_simulated_day(
    conn: psycopg.Connection,
    raw_schema: str,
    truth_schema: str,
    raw: Mapping[str, pd.DataFrame],
    truth: Mapping[str, pd.DataFrame],
    pending: pd.DataFrame,
) -> dict[str, int]:
    """Append one simulated day in one transaction, so that a crash leaves whole days: `raw`'s
    rows to the raw tables and `truth`'s to the truth tables (COPY), and `pending` replaces
    truth.pending_redemptions. Returns the rows appended per raw table."""
    with conn.transaction():
        counts = {name: copy_in(conn, sql.Identifier(raw_schema, name), frame) for name, frame in raw.items()}
        for name, frame in truth.items():
            copy_in(conn, sql.Identifier(truth_schema, name), frame)
        table = sql.Identifier(truth_schema, "pending_redemptions")
        conn.execute(sql.SQL("delete from {}").format(table))
        copy_in(conn, table, pending)
    return counts


def read_true_probabilities(conn: psycopg.Connection, schema: str, impression_ids: pd.Series) -> pd.Series | None:
    """The simulator's probability that each impression's label is 1, indexed by impression_id.

    None unless the truth schema covers every one of `impression_ids`: an oracle on part of the
    rows would not be comparable with the model it stands beside.
    """
    table = sql.Identifier(schema, "impression_outcomes")
    exists = conn.execute("select to_regclass(%s)", (table.as_string(conn),))
    if exists.fetchone()[0] is None:
        return None
    truth = copy_out(
        conn,
        sql.SQL("select impression_id, label_probability from {} where impression_id = any(%s)").format(table),
        (impression_ids.to_numpy().tolist(),),
    ).set_index("impression_id")["label_probability"]
    return truth if impression_ids.isin(truth.index).all() else None


# Type names as PostgreSQL's format_type() spells them, where they differ from the contract's.
_FORMAT_TYPE = {"timestamptz": "timestamp with time zone"}


def _contract_signature(table: Table) -> list[tuple[str, str, bool]]:
    return [(c.name, _FORMAT_TYPE.get(c.type, c.type.replace(", ", ",")), c.required) for c in table.columns]


def _column_signature(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str, bool]]:
    """(name, type, not null) of each column of an existing table, in order; empty when there is none."""
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (schema, table),
    ).fetchall()
    return [tuple(row) for row in rows]


# --- feature marts built by dbt -------------------------------------------------------------------


def _sample_order(keys: Sequence[str]) -> sql.Composed:
    """The order of a deterministic sample: md5 of the key columns joined by '|', ties by the key."""
    columns = sql.SQL(", ").join(map(sql.Identifier, keys))
    return sql.SQL("md5(concat_ws('|', {})), {}").format(columns, columns)


def _sampled(query: sql.Composable, keys: Sequence[str], rows: int) -> sql.Composed:
    """`query` cut to its at most `rows` rows first in `_sample_order(keys)`."""
    return sql.SQL("{} order by {} limit {}").format(query, _sample_order(keys), sql.Literal(rows))


def read_relation(
    conn: psycopg.Connection,
    relation: sql.Composable,
    columns: Sequence[str],
    *,
    where: sql.Composable | None = None,
    params: QueryParams = None,
    order_by: Sequence[str] = (),
    sample: tuple[Sequence[str], int] | None = None,
) -> pd.DataFrame:
    """Read `columns` of a table or view, optionally filtered, sampled and ordered, with COPY.

    `sample = (key columns, n)` keeps at most n rows: those with the smallest md5 of their key
    (ties by the key). Whether a row is kept depends on its key alone, not on the table's order or
    size, so the same rows give the same sample; PostgreSQL keeps only n rows in memory for it.
    """
    query = sql.SQL("select {} from {}").format(sql.SQL(", ").join(map(sql.Identifier, columns)), relation)
    if where is not None:
        query = sql.SQL("{} where {}").format(query, where)
    if sample is not None:
        query = sql.SQL("select * from ({}) as sampled").format(_sampled(query, *sample))
    if order_by:
        query = sql.SQL("{} order by {}").format(query, sql.SQL(", ").join(map(sql.Identifier, order_by)))
    return copy_out(conn, query, params)


# --- ml output tables -----------------------------------------------------------------------------


def ensure_reader_role(conn: psycopg.Connection, role: str) -> None:
    """Create `role`, the NOLOGIN group role BI logins are granted, unless it exists.

    A role belongs to the whole server, not to one database, so another database's run may create
    it at the same moment: losing that race is fine. Where it exists already (say a DBA created it),
    nothing is created and the connecting user needs no CREATEROLE. dbt does the same before it
    applies its grants (warehouse/macros/reader_role.sql), so a plain `dbt build` works too.
    """
    if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None:
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        pass  # created concurrently by another session


def ensure_ml_tables(conn: psycopg.Connection, schema: str, reader_role: str) -> None:
    """Create the ml schema and its tables where missing, or bring them to this version's layout,
    readable by `reader_role` (idempotent).

    ml_tables.sql runs only where its digest is not in `ml_tables_layout` or one of its tables is
    missing. Its `alter table … add column if not exists` takes an ACCESS EXCLUSIVE lock even when
    the column is there: run by every stage, it would wait behind any open BI query on the table,
    and every later query behind it, and behind another shard's scoring transaction. So a day's
    stages read two catalog rows, and only the first stage of a new version (or role) changes
    anything. Stages that find the layout old together take turns (an advisory lock); the second
    then finds it current.
    """
    ensure_reader_role(conn, reader_role)
    layout = _ddl("ml_tables.sql", schema, reader=reader_role)
    digest = hashlib.sha256(layout.as_string(conn).encode()).hexdigest()
    if _ml_tables_current(conn, schema, digest):
        return
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"offerrank ml tables {schema}",))
        if _ml_tables_current(conn, schema, digest):
            return
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        _upgrade_eval_metrics(conn, schema)
        unpartitioned = _set_aside_unpartitioned_scores(conn, schema)
        conn.execute(layout)
        if unpartitioned:
            _move_into_day_partitions(conn, schema, "offer_scores_unpartitioned", "offer_scores")
        conn.execute(
            sql.SQL("insert into {} (digest) values (%s) on conflict do nothing").format(
                sql.Identifier(schema, "ml_tables_layout")
            ),
            (digest,),
        )


# Every table ml_tables.sql creates: the digest cannot tell that one was dropped since, the catalog can.
ML_TABLES = tuple(re.findall(r"create table if not exists \{schema\}\.(\w+)", _sql_file("ml_tables.sql")))


def _ml_tables_current(conn: psycopg.Connection, schema: str, digest: str) -> bool:
    """Whether every table of ml_tables.sql is in `schema` and the layout of `digest` was applied there."""
    names = [sql.Identifier(schema, table).as_string(conn) for table in ML_TABLES]
    present = conn.execute("select count(to_regclass(name)) from unnest(%s::text[]) as name", (names,)).fetchone()[0]
    if present < len(names):
        return False
    applied = sql.SQL("select exists (select from {} where digest = %s)").format(
        sql.Identifier(schema, "ml_tables_layout")
    )
    return conn.execute(applied, (digest,)).fetchone()[0]


def _upgrade_eval_metrics(conn: psycopg.Connection, schema: str) -> None:
    """Set aside an `eval_metrics` of the layout before metrics were keyed by run date.

    Its rows (keyed by the model whose windows were scored) cannot be mapped onto run dates
    without guessing, so the table is renamed, not rewritten: nothing is lost, and ml_tables.sql
    creates the current layout beside it.
    """
    old_layout = conn.execute(
        "select 1 from information_schema.columns"
        " where table_schema = %s and table_name = 'eval_metrics' and column_name = 'evaluated_model_id'",
        (schema,),
    ).fetchone()
    if old_layout is not None:
        conn.execute(
            sql.SQL("alter index if exists {} rename to eval_metrics_by_model_grain").format(
                sql.Identifier(schema, "eval_metrics_grain")
            )
        )
        conn.execute(
            sql.SQL("alter table {} rename to eval_metrics_by_model").format(sql.Identifier(schema, "eval_metrics"))
        )


def _set_aside_unpartitioned_scores(conn: psycopg.Connection, schema: str) -> bool:
    """Rename an `offer_scores` of the layout before it was partitioned by day to
    `offer_scores_unpartitioned`, out of the way of ml_tables.sql, which creates the partitioned
    table; returns whether there was one.

    `_move_into_day_partitions` then moves its rows, in the same transaction: readers see the old
    table or the new one with every row.
    """
    kind = conn.execute(
        "select c.relkind from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = 'offer_scores'",
        (schema,),
    ).fetchone()
    if kind is None or kind[0] != "r":
        return False
    conn.execute(
        sql.SQL("alter index {} rename to offer_scores_unpartitioned_pkey").format(
            sql.Identifier(schema, "offer_scores_pkey")
        )
    )
    conn.execute(
        sql.SQL("alter table {} rename to offer_scores_unpartitioned").format(sql.Identifier(schema, "offer_scores"))
    )
    return True


def _move_into_day_partitions(conn: psycopg.Connection, schema: str, source: str, table: str) -> None:
    """Move every row of `schema.source` into the day-partitioned `schema.table`, a partition per
    date, and drop it. Columns of `table` that `source` lacks take their defaults, as `add column`
    gave them before."""
    rows = sql.Identifier(schema, source)
    date_column = _partition_column(conn, sql.Identifier(schema, table))
    for (day,) in conn.execute(sql.SQL("select distinct {} from {}").format(sql.Identifier(date_column), rows)):
        ensure_day_partition(conn, schema, table, day)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in _column_signature(conn, schema, source))
    conn.execute(
        sql.SQL("insert into {} ({}) select {} from {}").format(sql.Identifier(schema, table), columns, columns, rows)
    )
    conn.execute(sql.SQL("drop table {}").format(rows))


# --- tables partitioned by day ---------------------------------------------------------------------
# offer_scores holds a partition per score date. A day is replaced by loading its rows into a new
# table without the primary key's index, building the index once from the loaded rows (a sorted
# build), and swapping that table in for the day's partition: a bare COPY into the indexed table
# inserts and WAL-logs each row's index entry one at a time, which made it two to four times
# slower than into a table without one (docs/performance.md, "Writing scores back"), and a day
# written again left its old rows dead beside the new ones.


def _analyze_partitioned(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """Gather the statistics of the partitioned `table` as a whole (what plans of queries over
    several days use), without analyzing each partition again (PostgreSQL 18's `analyze only`).

    Before PostgreSQL 18 that cannot be asked for, and analyzing the parent would sample every
    partition anew each day: the whole table's statistics are then left to a manual `analyze`.
    """
    if conn.info.server_version >= 180000:
        conn.execute(sql.SQL("analyze only {}").format(table))


def _day_partition_name(table: str, day: dt.date) -> str:
    return f"{table}_{day:%Y_%m_%d}"


def _day_partition(schema: str, table: str, day: dt.date) -> sql.Identifier:
    """The partition of `day` of the day-partitioned `schema.table`: `<table>_YYYY_MM_DD`."""
    return sql.Identifier(schema, _day_partition_name(table, day))


def _day_bounds(day: dt.date) -> sql.Composed:
    return sql.SQL("for values from ({}) to ({})").format(sql.Literal(day), sql.Literal(day + dt.timedelta(days=1)))


def _partition_column(conn: psycopg.Connection, table: sql.Identifier) -> str:
    """The column the partitioned `table` is partitioned on."""
    return conn.execute(
        "select a.attname from pg_partitioned_table as p"
        " join pg_attribute as a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]"
        " where p.partrelid = %s::regclass",
        (table.as_string(conn),),
    ).fetchone()[0]


def ensure_day_partition(conn: psycopg.Connection, schema: str, table: str, day: dt.date) -> sql.Identifier:
    """The partition of `day` of `schema.table`, created empty where missing; returns its name.

    It is created as a table of its own and then attached, which locks out the table's writers
    for a moment but not its readers (`create table … partition of` would lock out both). Shards
    of one date create it together: they take turns (an advisory lock), and the second finds it
    there. It is done in a transaction of its own, before the shard's long one.
    """
    partition = _day_partition(schema, table, day)
    if relation_exists(conn, partition):
        return partition
    with conn.transaction():
        lock = f"offerrank partitions {schema}.{table}"
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
        if not relation_exists(conn, partition):
            parent = sql.Identifier(schema, table)
            conn.execute(sql.SQL("create table {} (like {} including all)").format(partition, parent))
            conn.execute(sql.SQL("alter table {} attach partition {} {}").format(parent, partition, _day_bounds(day)))
    return partition


def new_day_partition(conn: psycopg.Connection, schema: str, table: str, day: dt.date) -> sql.Identifier:
    """An empty table to load `day`'s rows of the day-partitioned `schema.table` into: its columns,
    defaults and checks, a check that every row is of `day`, and no index. Create it in the
    transaction that `swap_in_day_partition` ends, and nobody else sees it."""
    load = sql.Identifier(schema, f"{_day_partition_name(table, day)}_load")
    date_column = _partition_column(conn, sql.Identifier(schema, table))
    conn.execute(
        sql.SQL(
            "create table {load} (like {parent} including defaults including constraints,"
            " constraint {name} check ({date} >= {day} and {date} < {next}))"
        ).format(
            load=load,
            parent=sql.Identifier(schema, table),
            name=sql.Identifier(f"{date_column}_of_partition"),
            date=sql.Identifier(date_column),
            day=sql.Literal(day),
            next=sql.Literal(day + dt.timedelta(days=1)),
        )
    )
    return load


def swap_in_day_partition(
    conn: psycopg.Connection, schema: str, table: str, day: dt.date, load: sql.Identifier
) -> sql.Identifier:
    """Make `load` (`new_day_partition`, filled) the partition of `day` of `schema.table`, in place
    of the day's partition if there is one, which is dropped; returns the partition's name.

    Run in one transaction with the load, so that readers see the old day or the new one. The
    primary key is built on the loaded rows before anything else is locked; from the lock on the
    table (`_lock_for_swap`) to the commit, readers of the table wait for catalog changes only:
    attaching checks the bounds against the load's check and adopts its index.
    """
    parent = sql.Identifier(schema, table)
    name = _day_partition_name(table, day)
    partition = sql.Identifier(schema, name)
    loaded_key, key = sql.Identifier(f"{name}_load_pkey"), sql.Identifier(f"{name}_pkey")
    primary_key = conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid = %s::regclass and contype = 'p'",
        (parent.as_string(conn),),
    ).fetchone()[0]
    conn.execute(sql.SQL("alter table {} add constraint {} {}").format(load, loaded_key, sql.SQL(primary_key)))
    _lock_for_swap(conn, parent)
    if relation_exists(conn, partition):
        conn.execute(sql.SQL("alter table {} detach partition {}").format(parent, partition))
        conn.execute(sql.SQL("drop table {}").format(partition))
    conn.execute(sql.SQL("alter table {} rename to {}").format(load, sql.Identifier(name)))
    conn.execute(sql.SQL("alter table {} rename constraint {} to {}").format(partition, loaded_key, key))
    conn.execute(sql.SQL("alter table {} attach partition {} {}").format(parent, partition, _day_bounds(day)))
    return partition


def _lock_for_swap(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """Take `table` to this transaction alone (ACCESS EXCLUSIVE) for a swap of its partitions:
    `SWAP_LOCK_TRIES` tries of `SWAP_LOCK_TRY` each, between which the queries queued behind the
    request go on, then one wait without a limit. A try that times out is undone alone (a
    savepoint), its lock request withdrawn."""
    statement = sql.SQL("lock table {} in access exclusive mode").format(table)
    before = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
    try_ms = str(SWAP_LOCK_TRY // dt.timedelta(milliseconds=1))
    for _ in range(SWAP_LOCK_TRIES):
        try:
            with conn.transaction():
                conn.execute("select set_config('lock_timeout', %s, true)", (try_ms,))
                conn.execute(statement)
        except psycopg.errors.LockNotAvailable:
            continue
        conn.execute("select set_config('lock_timeout', %s, true)", (before,))
        return
    conn.execute(statement)


@dataclass(frozen=True)
class ModelRecord:
    """One trained model as the registry stores it."""

    model_id: str
    algorithm: str
    trained_for_date: dt.date
    features: list[str]
    params: dict[str, object]
    train_start_date: dt.date
    train_end_date: dt.date
    valid_start_date: dt.date
    valid_end_date: dt.date
    metrics: dict[str, float]
    model_text: str
    status: str = "candidate"
    categorical_features: list[str] = field(default_factory=list)
    tune_start_date: dt.date | None = None
    tune_end_date: dt.date | None = None
    calibration: dict[str, object] | None = None  # None: models registered before calibration existed
    manifest_hash: str | None = None
    code_version: str | None = None


_REGISTRY_COLUMNS = (
    "model_id", "algorithm", "trained_for_date", "features", "params", "train_start_date", "train_end_date",
    "valid_start_date", "valid_end_date", "metrics", "model_text", "status", "categorical_features",
    "tune_start_date", "tune_end_date", "calibration", "manifest_hash", "code_version",
)  # fmt: skip
_JSON_COLUMNS = ("params", "metrics", "calibration")


def register_model(conn: psycopg.Connection, schema: str, record: ModelRecord) -> None:
    """Insert a model, or refresh it when the same model_id was trained before (a re-run).

    A re-run keeps the row's created_at and status, so registering is idempotent.
    """
    values = {name: getattr(record, name) for name in _REGISTRY_COLUMNS}
    # JSON has no NaN: an undefined metric is stored as null.
    values["metrics"] = {name: None if value != value else value for name, value in record.metrics.items()}
    for name in _JSON_COLUMNS:
        values[name] = None if values[name] is None else json.dumps(values[name], sort_keys=True)
    updated = [c for c in _REGISTRY_COLUMNS if c not in ("model_id", "status")]
    statement = sql.SQL(
        "insert into {table} ({columns}) values ({values}) on conflict (model_id) do update set {updates}"
    ).format(
        table=sql.Identifier(schema, "model_registry"),
        columns=sql.SQL(", ").join(map(sql.Identifier, _REGISTRY_COLUMNS)),
        values=sql.SQL(", ").join(map(sql.Placeholder, _REGISTRY_COLUMNS)),
        updates=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in updated),
    )
    conn.execute(statement, values)


PROMOTION_ACTIONS = ("promote", "manual_promote", "rollback")


def promote_model(
    conn: psycopg.Connection,
    schema: str,
    model_id: str,
    *,
    action: str = "promote",
    reason: str,
    run_date: dt.date | None = None,
) -> bool:
    """Make `model_id` the champion, retire the previous one and log the change, in one transaction.

    A crash anywhere inside leaves the old champion in place. Returns False, changing nothing,
    when `model_id` is the champion already.
    """
    if action not in PROMOTION_ACTIONS:
        raise ValueError(f"promotion action must be one of {PROMOTION_ACTIONS}, got {action!r}")
    table = sql.Identifier(schema, "model_registry")
    with conn.transaction():
        # Serialise promotions; the partial unique index makes a second champion impossible anyway.
        conn.execute(sql.SQL("lock table {} in share row exclusive mode").format(table))
        found = conn.execute(sql.SQL("select status from {} where model_id = %s").format(table), (model_id,)).fetchone()
        if found is None:
            raise LookupError(f"no model {model_id!r} in the registry")
        if found[0] == "champion":
            return False
        previous = conn.execute(sql.SQL("select model_id from {} where status = 'champion'").format(table)).fetchone()
        conn.execute(sql.SQL("update {} set status = 'retired' where status = 'champion'").format(table))
        conn.execute(sql.SQL("update {} set status = 'champion' where model_id = %s").format(table), (model_id,))
        conn.execute(
            sql.SQL(
                "insert into {} (model_id, previous_model_id, action, reason, run_date) values (%s, %s, %s, %s, %s)"
            ).format(sql.Identifier(schema, "model_promotions")),
            (model_id, previous[0] if previous else None, action, reason, run_date),
        )
    return True


def _model_records(
    conn: psycopg.Connection, schema: str, where: sql.Composable, params: QueryParams
) -> list[ModelRecord]:
    columns = sql.SQL(", ").join(map(sql.Identifier, _REGISTRY_COLUMNS))
    rows = conn.execute(
        sql.SQL("select {} from {} where {}").format(columns, sql.Identifier(schema, "model_registry"), where), params
    ).fetchall()
    return [ModelRecord(**dict(zip(_REGISTRY_COLUMNS, row, strict=True))) for row in rows]


def champion_model(conn: psycopg.Connection, schema: str) -> ModelRecord | None:
    """The current champion, or None when no model has been promoted."""
    records = _model_records(conn, schema, sql.SQL("status = 'champion'"), None)
    return records[0] if records else None


def registered_model(conn: psycopg.Connection, schema: str, model_id: str) -> ModelRecord | None:
    """One registered model, or None when there is no such model_id."""
    records = _model_records(conn, schema, sql.SQL("model_id = %s"), (model_id,))
    return records[0] if records else None


def _small_query(conn: psycopg.Connection, query: sql.Composable, params: QueryParams = None) -> pd.DataFrame:
    """A few rows for a person to read (the registry, its history): no COPY needed."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        frame = pd.DataFrame(cur.fetchall(), columns=[column.name for column in cur.description], dtype=object)
        return frame.where(frame.notna(), None)  # SQL nulls stay None, not NaN


def sample_rows(conn: psycopg.Connection, query: str, limit: int) -> pd.DataFrame:
    """The first `limit` rows of `query`, a SELECT given as text (a dbt test's compiled SQL).

    The text is composed, not passed with parameters, so a `%` in it is not a placeholder.
    """
    return _small_query(
        conn, sql.SQL("select * from (\n{}\n) as sampled limit {}").format(sql.SQL(query), sql.Literal(limit))
    )


def list_models(conn: psycopg.Connection, schema: str) -> pd.DataFrame:
    """Every registered model without its text, newest first."""
    return _small_query(
        conn,
        sql.SQL(
            "select model_id, algorithm, trained_for_date, status, metrics, valid_start_date, valid_end_date,"
            " code_version, created_at from {} order by trained_for_date desc, created_at desc, model_id"
        ).format(sql.Identifier(schema, "model_registry")),
    )


def promotion_history(conn: psycopg.Connection, schema: str) -> pd.DataFrame:
    """Every change of champion, oldest first."""
    return _small_query(
        conn,
        sql.SQL(
            "select promoted_at, model_id, previous_model_id, action, reason, run_date from {} order by promoted_at"
        ).format(sql.Identifier(schema, "model_promotions")),
    )


def replace_feature_importance(conn: psycopg.Connection, schema: str, model_id: str, frame: pd.DataFrame) -> int:
    """Replace one model's global feature importance rows (call inside the registering transaction)."""
    table = sql.Identifier(schema, "feature_importance")
    conn.execute(sql.SQL("delete from {} where model_id = %s").format(table), (model_id,))
    return copy_in(conn, table, frame)


RECOMMENDATION_COLUMNS = [
    "score_date",
    "customer_id",
    "rank",
    "offer_id",
    "score",
    "model_id",
    "ranked_by",
    "score_rank",
    "variant",
]
SHADOW_COLUMNS = ["score_date", "customer_id", "rank", "offer_id", "score", "model_id", "score_rank"]


@dataclass(frozen=True)
class ServedChunk:
    """The rows of some whole customers of a scored day."""

    scores: pd.DataFrame  # offer_scores rows
    recommendations: pd.DataFrame  # recommendations rows (RECOMMENDATION_COLUMNS and any others)
    exposures: pd.DataFrame | None = None  # experiment_assignments rows of the customers served
    shadow: pd.DataFrame | None = None  # shadow_recommendations rows (SHADOW_COLUMNS and any others)


@dataclass(frozen=True)
class ScoredDay:
    """What `replace_scored_day` wrote: rows per table."""

    scores: int = 0
    recommendations: int = 0
    new_assignments: int = 0
    shadow_recommendations: int = 0


def replace_scored_day(
    conn: psycopg.Connection,
    schema: str,
    score_date: dt.date,
    chunks: Iterable[ServedChunk],
    agreement: Callable[[], pd.DataFrame] | None = None,
    shard: Shard | None = None,
) -> ScoredDay:
    """Replace one date's `offer_scores`, `recommendations`, `shadow_recommendations` and
    `shadow_agreement` with `chunks`, and add the day's first exposures to `experiment_assignments`,
    all in one transaction.

    Readers see the old day of every table or the new one, never a part or a mix: a failure, a
    killed process or a lost connection before the commit leaves the old day whole. The chunks
    are consumed as they are written, so their source may stream; `agreement`, called once they
    are all written, gives the day's `shadow_agreement` rows (None or empty: no shadow).
    Assignments are only ever added (`on conflict do nothing`): a customer keeps the variant and
    time of their first exposure, and a re-run of the day adds nothing. The date's scores are
    loaded into a new partition and swapped in for the old one (`swap_in_day_partition`).

    With a `shard`, only the rows of that shard's customers (`shard_filter`) are replaced, and the
    chunks must hold only them; other shards' rows stay as they are. `shadow_agreement` is per
    date, not per customer: `agreement` is then called with the table locked against the other
    shards, so that, reading the date's stored lists, the last shard to commit writes the rows of
    them all.
    """
    tables = {name: sql.Identifier(schema, name) for name in _SCORED_DAY_TABLES}
    written = dict.fromkeys(("scores", "recommendations", "shadow_recommendations", "new_assignments"), 0)
    of_date = sql.SQL("delete from {} where score_date = %s")
    if shard is not None:
        ensure_day_partition(conn, schema, "offer_scores", score_date)
    with conn.transaction():
        if shard is None:
            scores_into = new_day_partition(conn, schema, "offer_scores", score_date)
            cleared = [table for name, table in tables.items() if name != "offer_scores"]
        else:  # its customers' rows in the date's partition, beside other shards'
            scores_into = tables["offer_scores"]
            cleared = [table for name, table in tables.items() if name != "shadow_agreement"]  # its turn comes below
        for table in cleared:
            conn.execute(sql.SQL("{}{}").format(of_date.format(table), and_in_shard(shard)), (score_date,))
        for chunk in chunks:
            written["scores"] += copy_in(conn, scores_into, chunk.scores)
            written["recommendations"] += copy_in(
                conn, tables["recommendations"], chunk.recommendations[RECOMMENDATION_COLUMNS]
            )
            if chunk.shadow is not None:
                written["shadow_recommendations"] += copy_in(
                    conn, tables["shadow_recommendations"], chunk.shadow[SHADOW_COLUMNS]
                )
            if chunk.exposures is not None and not chunk.exposures.empty:
                written["new_assignments"] += _add_assignments(conn, schema, chunk.exposures)
        if shard is not None:
            # Shards take turns from here to their commit; each statement after the lock sees what
            # the shards before committed (read committed), so the last one sees every shard's lists.
            conn.execute(sql.SQL("lock table {} in share row exclusive mode").format(tables["shadow_agreement"]))
            conn.execute(of_date.format(tables["shadow_agreement"]), (score_date,))
        rows = agreement() if agreement is not None else None
        if rows is not None and not rows.empty:
            copy_in(conn, tables["shadow_agreement"], rows)
        if shard is None:  # last: readers wait from here to the commit
            swap_in_day_partition(conn, schema, "offer_scores", score_date, scores_into)
    for table in (_day_partition(schema, "offer_scores", score_date), tables["recommendations"]):
        conn.execute(sql.SQL("analyze {}").format(table))
    _analyze_partitioned(conn, tables["offer_scores"])
    return ScoredDay(
        written["scores"], written["recommendations"], written["new_assignments"], written["shadow_recommendations"]
    )


def shard_filter(shard: Shard, column: str = "customer_id") -> sql.Composed:
    """The condition that the customer id in `column` falls in `shard`: the first 32 bits of the md5 of
    its decimal text, modulo the shard count.

    md5 is a documented function whose result is fixed by its RFC, on every PostgreSQL version and
    platform (and in Python's hashlib, Citus and most warehouses), so a customer stays in their
    shard across upgrades and replicas. PostgreSQL's own hashtext()/hashtextextended() are
    undocumented internals that have changed between major versions and depend on byte order.
    """
    return sql.SQL("mod(('x' || substr(md5({}::text), 1, 8))::bit(32)::bigint, {}) = {}").format(
        sql.Identifier(column), sql.Literal(shard.count), sql.Literal(shard.index)
    )


def and_in_shard(shard: Shard | None) -> sql.Composable:
    """` and <shard_filter(shard)>` to end a where clause with, or nothing without a shard."""
    return sql.SQL("") if shard is None else sql.SQL(" and {}").format(shard_filter(shard))


_ASSIGNMENT_TYPES = {"experiment_id": "text", "customer_id": "bigint", "variant": "text", "assigned_at": "timestamptz"}


def _add_assignments(conn: psycopg.Connection, schema: str, frame: pd.DataFrame) -> int:
    """Add the customers of `frame` not yet assigned in their experiment; returns how many.

    COPY cannot skip conflicts, and a temporary table would leave a temporary schema behind on the
    server: one insert of the chunk's columns as arrays (one row per customer, a few thousand).
    """
    arrays = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(kind)) for kind in _ASSIGNMENT_TYPES.values())
    statement = sql.SQL("insert into {} ({}) select * from unnest({}) on conflict do nothing").format(
        sql.Identifier(schema, "experiment_assignments"),
        sql.SQL(", ").join(map(sql.Identifier, _ASSIGNMENT_TYPES)),
        arrays,
    )
    return conn.execute(statement, [frame[column].tolist() for column in _ASSIGNMENT_TYPES]).rowcount


# The tables a scored day replaces, keyed by score_date.
_SCORED_DAY_TABLES = ("offer_scores", "recommendations", "shadow_recommendations", "shadow_agreement")


def experiment_assignments(conn: psycopg.Connection, schema: str, experiment_id: str) -> pd.DataFrame:
    """Every stored (customer_id, variant) of one experiment."""
    return copy_out(
        conn,
        sql.SQL("select customer_id, variant from {} where experiment_id = %s order by customer_id").format(
            sql.Identifier(schema, "experiment_assignments")
        ),
        (experiment_id,),
    )


def latest_challengers(conn: psycopg.Connection, schema: str, metric: str, tiebreak: str) -> list[ModelRecord]:
    """The models of the latest training date that are not the champion, best-validated first:
    highest `metric` in their registry metrics, ties by `tiebreak`, then by model_id."""
    return _model_records(
        conn,
        schema,
        sql.SQL(
            "status <> 'champion' and trained_for_date = (select max(trained_for_date) from {})"
            " order by (metrics ->> %s)::double precision desc nulls last,"
            " (metrics ->> %s)::double precision desc nulls last, model_id"
        ).format(sql.Identifier(schema, "model_registry")),
        (metric, tiebreak),
    )


def shadow_agreement(conn: psycopg.Connection, schema: str, score_date: dt.date) -> pd.DataFrame:
    """One date's shadow agreement rows (none without a shadow)."""
    return _small_query(
        conn,
        sql.SQL(
            "select variant, model_id, k, customers, overlap_at_k from {} where score_date = %s order by variant"
        ).format(sql.Identifier(schema, "shadow_agreement")),
        (score_date,),
    )


def replace_eval_metrics(conn: psycopg.Connection, schema: str, as_of_date: dt.date, metrics: pd.DataFrame) -> int:
    """Replace the run date's rows of the scorers in `metrics`, atomically; other scorers' rows stay."""
    table = sql.Identifier(schema, "eval_metrics")
    scorers = sorted(metrics["model_id"].unique().tolist())
    with conn.transaction():
        conn.execute(
            sql.SQL("delete from {} where as_of_date = %s and model_id = any(%s)").format(table), (as_of_date, scorers)
        )
        return copy_in(conn, table, metrics.assign(as_of_date=as_of_date))


def validation_metrics(
    conn: psycopg.Connection, schema: str, as_of_date: dt.date, ordering: str = "raw"
) -> dict[str, dict[str, float]]:
    """{scorer model_id: {metric name: value}} on the validation window of one run date, all
    customers, in the scorers' own order (`raw`) or as served (`served`)."""
    rows = conn.execute(
        sql.SQL(
            "select model_id, metric, k, value from {}"
            " where as_of_date = %s and split = 'valid' and segment = 'all' and ordering = %s"
            " order by model_id, metric, k"
        ).format(sql.Identifier(schema, "eval_metrics")),
        (as_of_date, ordering),
    ).fetchall()
    metrics: dict[str, dict[str, float]] = {}
    for model_id, metric, k, value in rows:
        metrics.setdefault(model_id, {})[metric_label(metric, k)] = value
    return metrics


def replace_feature_drift(conn: psycopg.Connection, schema: str, as_of_date: dt.date, frame: pd.DataFrame) -> int:
    """Replace one date's feature drift rows with `frame` (possibly empty), in one transaction."""
    table = sql.Identifier(schema, "feature_drift")
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where as_of_date = %s").format(table), (as_of_date,))
        return copy_in(conn, table, frame.assign(as_of_date=as_of_date))


def replace_drift_reference(
    conn: psycopg.Connection,
    schema: str,
    candidates: sql.Composable,
    reference_date: dt.date,
    features: Sequence[str],
    categorical: Sequence[str],
    sample: tuple[Sequence[str], int],
) -> int:
    """Replace one date's drift reference with a sample of `candidates` on that as_of_date: the at
    most `sample[1]` rows first by md5 of the `sample[0]` key (as `read_relation`), one array per
    feature in that order. One statement inside PostgreSQL, in one transaction with the delete;
    returns the features stored (none when the date has no candidates)."""
    table = sql.Identifier(schema, "drift_reference")
    source = sql.SQL("select * from {} where as_of_date = %(day)s").format(candidates)
    types = _arrow_schema(conn, source, {"day": reference_date})
    booleans = {name for name, arrow_type in types.items() if arrow_type == pa.bool_()}
    # One pass over the sample makes every feature's array, each in the sample's order (its rank,
    # computed once per row); the single row of arrays is then unpivoted, one row per feature.
    columns = {name: f"values_{i}" for i, name in enumerate(features)}  # the arrays' names in the aggregate
    arrays = sql.SQL(", ").join(
        sql.SQL("array_agg({} order by sampled.rank) as {}").format(
            _reference_value(name, name in categorical, name in booleans), sql.Identifier(column)
        )
        for name, column in columns.items()
    )
    unpivoted = sql.SQL(", ").join(
        sql.SQL(
            "({}, 'categorical', null::double precision[], {})"
            if name in categorical
            else "({}, 'numeric', {}, null::text[])"
        ).format(sql.Literal(name), sql.Identifier("aggregated", column))
        for name, column in columns.items()
    )
    statement = sql.SQL(
        "insert into {table} (reference_date, feature, kind, n_rows, numeric_values, categorical_values)"
        " select %(day)s, unpivoted.feature, unpivoted.kind, aggregated.n_rows,"
        " unpivoted.numeric_values, unpivoted.categorical_values"
        " from (select count(*) as n_rows, {arrays} from"
        " (select *, row_number() over (order by {order}) as rank from ({sampled}) as ranked) as sampled"
        " ) as aggregated"
        " cross join lateral (values {unpivoted}) as unpivoted (feature, kind, numeric_values, categorical_values)"
        " where aggregated.n_rows > 0"
    ).format(
        table=table,
        arrays=arrays,
        order=_sample_order(sample[0]),
        sampled=_sampled(source, *sample),
        unpivoted=unpivoted,
    )
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where reference_date = %s").format(table), (reference_date,))
        return conn.execute(statement, {"day": reference_date}).rowcount


def _reference_value(name: str, categorical: bool, boolean: bool) -> sql.Composed:
    """One feature's value in a sampled row, as its reference array stores it."""
    column = sql.Identifier("sampled", name)
    if categorical:
        return sql.SQL("{}::text").format(column)
    # booleans as 0/1, as ml.drift reads them
    return sql.SQL("{}::int::double precision" if boolean else "{}::double precision").format(column)


def read_drift_reference(
    conn: psycopg.Connection, schema: str, reference_date: dt.date, features: Sequence[str]
) -> pd.DataFrame | None:
    """A date's drift reference sample as a frame, one column per stored feature of `features`
    (numeric ones as floats, categorical ones as text, nulls kept); None when the date has none."""
    # One row per feature: its array is the bulk, and a binary result carries it whole (about 30
    # times faster than COPY of the unnested values, which also pays a sort to keep their order).
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(
            sql.SQL(
                "select feature, numeric_values, categorical_values from {}"
                " where reference_date = %s and feature = any(%s)"
            ).format(sql.Identifier(schema, "drift_reference")),
            (reference_date, list(features)),
        ).fetchall()
    if not rows:
        return None
    columns = {
        feature: pd.Series(numbers, dtype=float) if numbers is not None else pd.Series(texts, dtype=object)
        for feature, numbers, texts in rows
    }
    return pd.DataFrame({feature: columns[feature] for feature in features if feature in columns})


def drift_signal(conn: psycopg.Connection, schema: str, as_of_date: dt.date) -> float | None:
    """The drift signal of a run date: its largest PSI of a feature in the signal, or None when none was measured."""
    (value,) = conn.execute(
        sql.SQL("select max(psi) from {} where as_of_date = %s and is_in_signal").format(
            sql.Identifier(schema, "feature_drift")
        ),
        (as_of_date,),
    ).fetchone()
    return value


def largest_drifts(conn: psycopg.Connection, schema: str, as_of_date: dt.date, limit: int = 5) -> pd.DataFrame:
    """The run date's `limit` features with the largest PSI, those in the drift signal first (the
    offer-level ones, larger by construction, would hide them)."""
    return _small_query(
        conn,
        sql.SQL(
            "select feature, kind, psi, ks, is_in_signal, model_id, reference_date from {}"
            " where as_of_date = %s and psi is not null"
            " order by is_in_signal desc, psi desc, feature limit %s"
        ).format(sql.Identifier(schema, "feature_drift")),
        (as_of_date, limit),
    )


def date_rows(conn: psycopg.Connection, schema: str, table: str, key_column: str, key: object) -> pd.DataFrame:
    """Every column of the rows of ml table `table` whose `key_column` equals `key`; no rows when the
    table does not exist yet (a stage that writes it has not run)."""
    relation = sql.Identifier(schema, table)
    if conn.execute("select to_regclass(%s)", (relation.as_string(conn),)).fetchone()[0] is None:
        return pd.DataFrame()
    return copy_out(
        conn, sql.SQL("select * from {} where {} = %s").format(relation, sql.Identifier(key_column)), (key,)
    )


def ranking_model(conn: psycopg.Connection, schema: str, score_date: dt.date) -> str | None:
    """The model (or 'heuristic') that ranked one date's treatment recommendations, the ones the
    champion serves; None before they exist."""
    row = conn.execute(
        sql.SQL("select min(model_id) from {} where score_date = %s and variant = 'treatment'").format(
            sql.Identifier(schema, "recommendations")
        ),
        (score_date,),
    ).fetchone()
    return row[0]


def next_run_date(conn: psycopg.Connection, raw_schema: str) -> dt.date | None:
    """The day after the latest impression in the raw data: the default run date, as in
    warehouse/macros/as_of_date.sql. None without impressions."""
    try:
        return conn.execute(
            sql.SQL("select (max(shown_at at time zone 'UTC'))::date + 1 from {}").format(
                sql.Identifier(raw_schema, "impressions")
            )
        ).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return None


def date_row_count(
    conn: psycopg.Connection, relation: sql.Composable, date_column: str, date: dt.date, shard: Shard | None = None
) -> int:
    """The rows of `relation` whose `date_column` is `date` (of the customers of `shard`, if given)."""
    query = sql.SQL("select count(*) from {} where {} = %s{}").format(
        relation, sql.Identifier(date_column), and_in_shard(shard)
    )
    return conn.execute(query, (date,)).fetchone()[0]


def customers_without_recommendations(
    conn: psycopg.Connection,
    schema: str,
    candidates: sql.Composable,
    score_date: dt.date,
    sample: int = 5,
    shard: Shard | None = None,
) -> tuple[int, int, list[int]]:
    """Of one date's eligible customers (a candidate offer they have not redeemed yet; of `shard`,
    if given): how many there are, how many have no recommendation, and up to `sample` of those
    customers' ids."""
    row = conn.execute(
        sql.SQL(
            "with eligible as (select distinct customer_id from {candidates}"
            " where as_of_date = %(date)s and not coalesce(has_redeemed_offer, false){in_shard}),"
            " missing as (select customer_id from eligible"
            " except select customer_id from {recommendations} where score_date = %(date)s)"
            " select (select count(*) from eligible), (select count(*) from missing),"
            " array(select customer_id from missing order by customer_id limit %(sample)s)"
        ).format(
            candidates=candidates,
            recommendations=sql.Identifier(schema, "recommendations"),
            in_shard=and_in_shard(shard),
        ),
        {"date": score_date, "sample": sample},
    ).fetchone()
    return row[0], row[1], list(row[2])


def served_model_metric(
    conn: psycopg.Connection, schema: str, metric: str, k: int | None, before: dt.date
) -> tuple[dt.date, str, float] | None:
    """The latest run date before `before` whose recommendations a model ranked: that date, the
    model, and its validation value of `metric` (at `k`) on that date (all customers, raw order)."""
    return conn.execute(
        sql.SQL(
            "with served as (select score_date, min(model_id) as model_id from {recommendations}"
            " where score_date < %(before)s and ranked_by = 'model' and variant = 'treatment'"
            " group by score_date order by score_date desc limit 1)"
            " select served.score_date, served.model_id, metrics.value"
            " from served inner join {metrics} as metrics"
            " on metrics.as_of_date = served.score_date and metrics.model_id = served.model_id"
            " where metrics.split = 'valid' and metrics.segment = 'all' and metrics.ordering = 'raw'"
            " and metrics.metric = %(metric)s and metrics.k is not distinct from %(k)s"
        ).format(
            recommendations=sql.Identifier(schema, "recommendations"), metrics=sql.Identifier(schema, "eval_metrics")
        ),
        {"before": before, "metric": metric, "k": k},
    ).fetchone()


def replace_explanations(conn: psycopg.Connection, schema: str, score_date: dt.date, frame: pd.DataFrame) -> int:
    """Replace one date's recommendation explanations in one transaction."""
    table = sql.Identifier(schema, "recommendation_explanations")
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where score_date = %s").format(table), (score_date,))
        return copy_in(conn, table, frame)


@dataclass
class StageLog:
    """What a stage reports about itself; filled in while it runs."""

    run_date: dt.date | None
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None  # what the stage decided, e.g. why it did not retrain
    failed: bool = False  # set by a stage that handled its own failure and lets the run go on


_STAGE_COUNTS = ("active_offers", "candidate_pairs", "recommendations_written", "rows_written")


@contextmanager
def recorded_stage(
    conn: psycopg.Connection, schema: str, run_id: str, step: str, run_date: dt.date | None = None
) -> Iterator[StageLog]:
    """Log a pipeline stage to `pipeline_runs`: 'running' at once, then 'success' or 'failed' with the error.

    The stage may set `run_date` once it knows it, fills `counts` (keys from _STAGE_COUNTS) and
    may leave a `message`; one that recovers from its own failure sets `failed` and does not raise.
    A stage that loses its connection raises ConnectionError saying where and what to do (never
    the password); its row stays 'running', as there is no server left to tell.
    """
    table = sql.Identifier(schema, "pipeline_runs")
    conn.execute(
        sql.SQL(
            "insert into {} (run_id, run_date, step, status, started_at) values (%s, %s, %s, 'running', now())"
            " on conflict (run_id, step) do update set run_date = excluded.run_date, status = 'running',"
            " started_at = now(), finished_at = null, seconds = null, message = null"
        ).format(table),
        (run_id, run_date, step),
    )
    log = StageLog(run_date)
    status, message, error = "failed", None, None
    try:
        yield log
        status, message = ("failed" if log.failed else "success"), log.message
    except BaseException as err:
        message, error = f"{type(err).__name__}: {err}"[:2000], err
        raise
    finally:
        unknown = set(log.counts) - set(_STAGE_COUNTS)
        if unknown:
            raise ValueError(f"unknown stage counts {sorted(unknown)}")
        counts = [log.counts.get(name) for name in _STAGE_COUNTS]
        try:
            conn.execute(
                sql.SQL(
                    "update {} set status = %s, message = %s, run_date = coalesce(%s, run_date),"
                    " finished_at = clock_timestamp(), seconds = extract(epoch from clock_timestamp() - started_at),"
                    " {counts} where run_id = %s and step = %s"
                ).format(
                    table,
                    counts=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in _STAGE_COUNTS),
                ),
                (status, message, log.run_date, *counts, run_id, step),
            )
        except psycopg.OperationalError as lost:
            if not conn.broken:
                raise
            # The stage's own error, when the server's going away caused it, says the most.
            cause = error if isinstance(error, psycopg.OperationalError) else lost
            raise _lost_connection(conn, step, cause) from lost


def _lost_connection(conn: psycopg.Connection, step: str, cause: psycopg.OperationalError) -> ConnectionError:
    """The error of a stage whose server went away (stopped, restarted, crashed) or became unreachable."""
    reason = next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
    where = f"postgresql://{conn.info.user}@{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    return ConnectionError(
        f"lost the connection to the warehouse at {where} during stage {step!r} ({reason}): what the stage had"
        " not committed is rolled back, and its pipeline_runs row stays 'running'. Check that the server runs"
        " (the embedded one: `offerrank db start`), then run the stage again."
    )


def stage_log(conn: psycopg.Connection, schema: str, run_id: str) -> list[dict[str, object]]:
    """The stages of one run, in the order they started."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            sql.SQL(
                "select step, status, run_date, seconds, message from {} where run_id = %s order by started_at"
            ).format(sql.Identifier(schema, "pipeline_runs")),
            (run_id,),
        )
        return cur.fetchall()


def output_row_counts(conn: psycopg.Connection, schema: str, score_date: dt.date | None) -> dict[str, int]:
    """Rows in each ml output table; for the date-keyed tables, rows of `score_date` only."""
    counts = {}
    for table, date_column in OUTPUT_TABLES.items():
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
        if date_column is not None:
            query = sql.SQL("{} where {} = %s").format(query, sql.Identifier(date_column))
        counts[table] = conn.execute(query, (score_date,) if date_column else None).fetchone()[0]
    return counts


# The ml tables and the date column that keys a day's rows (None: not keyed by date).
OUTPUT_TABLES: dict[str, str | None] = {
    "model_registry": None,
    "model_promotions": None,
    "feature_importance": None,
    "eval_metrics": "as_of_date",
    "feature_drift": "as_of_date",
    "drift_reference": "reference_date",
    "offer_scores": "score_date",
    "recommendations": "score_date",
    "recommendation_explanations": "score_date",
    "experiment_assignments": None,
    "shadow_recommendations": "score_date",
    "shadow_agreement": "score_date",
    "pipeline_runs": "run_date",
}


# --- the off-policy estimate ---------------------------------------------------------------------------


def iter_visit_candidates(
    conn: psycopg.Connection, relation: sql.Composable, columns: Sequence[str]
) -> Iterator[pd.DataFrame]:
    """Stream `columns` of the logged visits' candidates (fct_logged_visit_candidates), ordered by
    customer, day and offer: a customer's rows are contiguous, so chunks can hold whole customers."""
    query = sql.SQL("select {} from {} order by customer_id, as_of_date, offer_id").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), relation
    )
    return iter_copy_out(conn, query)


def served_outcomes(
    conn: psycopg.Connection, schema: str, served_impressions: sql.Composable, variant: str
) -> pd.DataFrame:
    """The online outcomes of one experiment variant's lists: the labelled impressions a
    deterministic policy served (fct_served_impressions, propensity 1) of offers the variant's
    recommendations held for the customer that day, one row per impression (customer_id,
    shown_date, label). In the closed loop (`offerrank simulate`) those are the lists as shown."""
    query = sql.SQL(
        "select served.customer_id, served.shown_date, served.label"
        " from {served} as served"
        " inner join {recommendations} as recommendations"
        " on served.shown_date = recommendations.score_date and served.customer_id = recommendations.customer_id"
        " and served.offer_id = recommendations.offer_id"
        " where recommendations.variant = %s"
        " order by served.customer_id, served.shown_date"
    ).format(served=served_impressions, recommendations=sql.Identifier(schema, "recommendations"))
    return copy_out(conn, query, (variant,))


def replace_off_policy_estimates(conn: psycopg.Connection, schema: str, frame: pd.DataFrame) -> int:
    """Replace the rows of `frame`'s (as_of_date, model_id, estimator) keys with it, in one transaction."""
    table = sql.Identifier(schema, "off_policy_estimates")
    with conn.transaction():
        for as_of_date, model_id in frame[["as_of_date", "model_id"]].drop_duplicates().itertuples(index=False):
            estimators = frame.loc[
                (frame["as_of_date"] == as_of_date) & (frame["model_id"] == model_id), "estimator"
            ].tolist()
            conn.execute(
                sql.SQL("delete from {} where as_of_date = %s and model_id = %s and estimator = any(%s)").format(table),
                (as_of_date, model_id, estimators),
            )
        return copy_in(conn, table, frame)


def off_policy_estimates(
    conn: psycopg.Connection, schema: str, as_of_date: dt.date, model_id: str, estimators: Sequence[str]
) -> pd.DataFrame:
    """The stored off-policy estimate rows of one run date and model, in the order of `estimators`."""
    return _small_query(
        conn,
        sql.SQL(
            "select * from {} where as_of_date = %s and model_id = %s order by array_position(%s::text[], estimator)"
        ).format(sql.Identifier(schema, "off_policy_estimates")),
        (as_of_date, model_id, list(estimators)),
    )
