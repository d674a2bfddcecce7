"""PostgreSQL's binary COPY format, encoded in memory with numpy: the write-back's physical limit.

The benchmark sends a buffer made here with nothing else to do (`send`), so the figure is what
the server and the wire take to ingest the rows, with no encoding on the clock. The layout of a
COPY BINARY stream (PostgreSQL's `COPY` documentation, "Binary Format"): a signature, flags and a
header extension length; per row a 16-bit field count, then per field a 32-bit length (-1 for
null) and the value in network byte order; a 16-bit -1 at the end.

Rows differ in length only by their text values and nulls, so rows that agree on those share
one numpy record layout and are encoded together with one `tobytes()`: vectorised, without a
Python loop over rows. Score rows have a handful of such layouts (model, ranked_by, variant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + np.array([0, 0], dtype=">i4").tobytes()  # flags, header extension length
TRAILER = np.array([-1], dtype=">i2").tobytes()
# PostgreSQL counts dates and timestamps from 2000-01-01.
_EPOCH_DAYS = int(np.datetime64("2000-01-01", "D").astype(np.int64))
_EPOCH_MICROSECONDS = int(np.datetime64("2000-01-01", "us").astype(np.int64))
# The binary form of each fixed-width type offerrank's tables use.
FIXED_TYPES = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "float4": ">f4",
    "float8": ">f8",
    "bool": "u1",
    "date": ">i4",
    "timestamp": ">i8",
    "timestamptz": ">i8",
}
TEXT_TYPES = {"text", "varchar", "bpchar"}
SEND_BLOCK_BYTES = 8 << 20


def column_types(conn: psycopg.Connection, table: sql.Identifier) -> dict[str, str]:
    """Each column of `table` and its type name (pg_type.typname), in table order."""
    rows = conn.execute(
        "select attribute.attname, type.typname from pg_attribute as attribute"
        " inner join pg_type as type on attribute.atttypid = type.oid"
        " where attribute.attrelid = %s::regclass and attribute.attnum > 0 and not attribute.attisdropped"
        " order by attribute.attnum",
        (table.as_string(conn),),
    ).fetchall()
    return dict(rows)


def _values(column: pd.Series, type_name: str) -> np.ndarray:
    """A fixed-width column as the numpy values its binary field holds (nulls: any value, they are
    not written)."""
    if type_name == "date":
        days = pd.to_datetime(column).to_numpy(dtype="datetime64[D]").astype(np.int64)
        return days - _EPOCH_DAYS
    if type_name in ("timestamp", "timestamptz"):
        stamps = pd.to_datetime(column, utc=type_name == "timestamptz")
        if type_name == "timestamptz":
            stamps = stamps.dt.tz_localize(None)
        return stamps.to_numpy(dtype="datetime64[us]").astype(np.int64) - _EPOCH_MICROSECONDS
    if type_name not in FIXED_TYPES:
        raise TypeError(f"no binary COPY encoding here for type {type_name}")
    kind = np.dtype(FIXED_TYPES[type_name]).newbyteorder("=")
    return column.to_numpy(dtype=kind, na_value=0)


def encode(frame: pd.DataFrame, types: Mapping[str, str]) -> bytes:
    """The rows of `frame` as one COPY BINARY stream of its columns, typed by `types` (column → typname).

    Rows come out grouped by layout, not in frame order: a table has no order.
    """
    columns = list(frame.columns)
    kinds = [types[name] for name in columns]
    # text goes in by layout (below), the fixed-width fields by value
    values = [
        None if kind in TEXT_TYPES else _values(frame[name], kind) for name, kind in zip(columns, kinds, strict=True)
    ]
    nulls = pd.DataFrame({name: frame[name].isna().to_numpy() for name in columns})
    # A row's layout: which fields are null and the text of every text field.
    layout = nulls.assign(
        **{name: frame[name] for name, kind in zip(columns, kinds, strict=True) if kind in TEXT_TYPES}
    )
    parts = [HEADER]
    for key, rows in layout.groupby(list(layout.columns), sort=False, dropna=False).indices.items():
        keys = key if isinstance(key, tuple) else (key,)
        parts.append(_encode_layout(dict(zip(layout.columns, keys, strict=True)), rows, columns, kinds, values))
    parts.append(TRAILER)
    return b"".join(parts)


def _encode_layout(
    key: Mapping[str, object],
    rows: np.ndarray,
    columns: Sequence[str],
    kinds: Sequence[str],
    values: list[np.ndarray | None],
) -> bytes:
    """The rows `rows`, which share one layout `key`, as COPY BINARY tuples."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    filled: dict[str, object] = {"count": len(columns)}
    for index, (name, kind) in enumerate(zip(columns, kinds, strict=True)):
        # the layout holds a text field's value, and a null flag for every other field
        is_null = pd.isna(key[name]) if kind in TEXT_TYPES else bool(key[name])
        fields.append((f"length{index}", ">i4"))
        if is_null:
            filled[f"length{index}"] = -1
            continue
        if kind in TEXT_TYPES:
            text = str(key[name]).encode()
            filled[f"length{index}"] = len(text)
            if text:  # an empty string is its length alone
                fields.append((f"value{index}", f"S{len(text)}"))
                filled[f"value{index}"] = text
        else:
            dtype = np.dtype(FIXED_TYPES[kind])
            filled[f"length{index}"] = dtype.itemsize
            fields.append((f"value{index}", FIXED_TYPES[kind]))
            filled[f"value{index}"] = values[index][rows]  # type: ignore[index]
    records = np.empty(len(rows), dtype=np.dtype(fields))  # packed: no alignment padding
    for name, value in filled.items():
        records[name] = value
    return records.tobytes()


def send(conn: psycopg.Connection, table: sql.Identifier, columns: Sequence[str], payload: bytes) -> None:
    """COPY an `encode`d buffer of `columns` into `table`: the server's and the wire's work alone."""
    statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    view = memoryview(payload)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(view), SEND_BLOCK_BYTES):
            copy.write(view[start : start + SEND_BLOCK_BYTES])
