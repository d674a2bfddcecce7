"""DataFrames encoded in PostgreSQL's binary COPY format, vectorised with numpy.

Binary COPY spares the server the parsing of every value as text (a float's most of all) and the
client the formatting of it: about the limit of what COPY can take. Each value is sent in the
exact wire format of its target column's type, so only the pairs of pandas column and PostgreSQL
type below are encoded; `encode` returns None for any other, and the caller sends CSV instead.
The rows the server stores are the same as from CSV (`ml.data.copy_in`), null for null: NaN of a
float column is null too, as pyarrow writes it to CSV.

| PostgreSQL | pandas |
|---|---|
| int2, int4, int8 | integer columns (numpy or nullable), values within the type's range |
| float8 | float64 and integer columns (numpy or nullable) |
| bool | bool and nullable boolean columns |
| text, varchar | object or string columns of str (None, NaN, pd.NA: null) |
| date | object columns of datetime.date (not datetime) |
| timestamptz | datetime64 columns with a time zone, whole microseconds |
| timestamp | naive datetime64 columns, whole microseconds |

The format: a signature and two int32 words, then each row as its field count (int16) and each
field as its length in bytes (int32, -1 for null) followed by that many bytes, all big-endian;
then -1 as int16.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags (no OIDs), header extension length
TRAILER = b"\xff\xff"
_NULL = -1
_POSTGRES_EPOCH = dt.date(2000, 1, 1)
_EPOCH_OFFSET_US = 946_684_800_000_000  # 2000-01-01 00:00 UTC in microseconds since 1970-01-01
_INTEGERS = {"int2": ">i2", "int4": ">i4", "int8": ">i8"}
_TEXT = ("text", "varchar")


@dataclass(frozen=True)
class _Field:
    """One column's values as the wire wants them: `lengths` per row (-1: null), and either
    `fixed`, big-endian values of one width (read where not null), or, for text, the distinct
    values' bytes in `blob` (each from its `offsets` entry) and each row's value as `codes`."""

    lengths: np.ndarray
    fixed: np.ndarray | None = None
    blob: np.ndarray | None = None
    offsets: np.ndarray | None = None
    codes: np.ndarray | None = None

    def rows(self, start: int, stop: int) -> _Field:
        """The field of rows start to stop."""
        cut = slice(start, stop)
        return replace(
            self,
            lengths=self.lengths[cut],
            fixed=None if self.fixed is None else self.fixed[cut],
            codes=None if self.codes is None else self.codes[cut],
        )


def encode(
    frame: pd.DataFrame, types: Sequence[str], *, encoding: str = "utf-8", rows_per_block: int = 100_000
) -> Iterator[bytes | memoryview] | None:
    """`frame`'s rows as one binary COPY stream (header, blocks of `rows_per_block` rows, trailer)
    for columns of PostgreSQL types `types` (psycopg's names, e.g. int8, text), texts in
    `encoding`; None when a column and its type are not a pair this module encodes (see the table
    above). Every value is checked before the first block, so a stream once begun is whole."""
    fields = []
    for (_, column), pg_type in zip(frame.items(), types, strict=True):
        encoded = _field(column, pg_type, encoding)
        if encoded is None:
            return None
        fields.append(encoded)
    return _stream(fields, len(frame), rows_per_block)


def _stream(fields: list[_Field], n_rows: int, rows_per_block: int) -> Iterator[bytes | memoryview]:
    yield HEADER
    for start in range(0, n_rows, rows_per_block):
        stop = min(start + rows_per_block, n_rows)
        yield _rows([field.rows(start, stop) for field in fields], stop - start)
    yield TRAILER


def _field(column: pd.Series, pg_type: str, encoding: str) -> _Field | None:
    if pg_type in _INTEGERS:
        return _integers(column, np.dtype(_INTEGERS[pg_type]))
    if pg_type == "float8":
        # not float32: CSV writes its shortest decimal, which the server reads as another double
        is_double = pd.api.types.is_float_dtype(column.dtype) and column.dtype.itemsize == 8
        if not (is_double or _is_integer(column)):
            return None
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return _fixed(values.astype(">f8"), np.isnan(values))
    if pg_type == "bool":
        if not pd.api.types.is_bool_dtype(column.dtype):
            return None
        return _fixed(column.to_numpy(dtype=bool, na_value=False).astype("u1"), column.isna().to_numpy())
    if pg_type in _TEXT:
        return _texts(column, encoding)
    if pg_type == "date":
        return _dates(column)
    if pg_type in ("timestamptz", "timestamp"):
        return _timestamps(column, with_zone=pg_type == "timestamptz")
    return None


def _is_integer(column: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def _integers(column: pd.Series, wire: np.dtype) -> _Field | None:
    if not _is_integer(column):
        return None
    missing = column.isna().to_numpy()
    values = column.to_numpy(dtype=np.int64 if column.dtype.kind != "u" else np.uint64, na_value=0)
    info = np.iinfo(wire)
    if len(values) and (values.min() < info.min or values.max() > info.max):
        return None  # out of range: CSV lets the server say so, where binary would wrap around
    return _fixed(values.astype(wire), missing)


def _fixed(values: np.ndarray, missing: np.ndarray) -> _Field:
    width = values.dtype.itemsize
    if missing.any():
        return _Field(np.where(missing, np.int32(_NULL), np.int32(width)), fixed=values)
    return _Field(np.full(len(values), width, dtype=np.int32), fixed=values)


def _factorized(column: pd.Series, kind: type) -> tuple[np.ndarray, list[object]] | None:
    """The codes and distinct values of an object or string column (nulls: code -1), or None when
    a value is not exactly of type `kind`: each distinct value is converted once, not each row."""
    if not (column.dtype == object or isinstance(column.dtype, pd.StringDtype)):
        return None
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    uniques = list(uniques)
    if any(type(value) is not kind for value in uniques):
        return None
    return codes, uniques


def _texts(column: pd.Series, encoding: str) -> _Field | None:
    factorized = _factorized(column, str)
    if factorized is None:
        return None
    codes, uniques = factorized
    try:
        encoded = [value.encode(encoding) for value in uniques]
    except UnicodeEncodeError:
        return None  # not in the connection's encoding (say SQL_ASCII): CSV sends it as before
    sizes = np.array([len(value) for value in encoded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    lengths = np.where(codes >= 0, sizes[codes] if len(sizes) else 0, _NULL).astype(np.int32)
    return _Field(lengths, blob=blob, offsets=offsets, codes=codes)


def _dates(column: pd.Series) -> _Field | None:
    factorized = _factorized(column, dt.date)
    if factorized is None:
        return None
    codes, uniques = factorized
    days = np.array([(value - _POSTGRES_EPOCH).days for value in uniques] or [0], dtype=np.int32)
    return _fixed(days[codes].astype(">i4"), codes < 0)


def _timestamps(column: pd.Series, *, with_zone: bool) -> _Field | None:
    dtype = column.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype if with_zone else np.dtype) or dtype.kind != "M":
        return None
    missing = column.isna().to_numpy()
    # int64 since 1970 in the column's unit; for a zoned column that is UTC, whatever its zone
    unit = dtype.unit if with_zone else np.datetime_data(dtype)[0]
    ticks = np.where(missing, 0, column.array.asi8)
    if unit == "ns":
        if (ticks % 1000).any():
            return None  # below a microsecond: the server's rounding of text decides, as with CSV
        micros = ticks // 1000
    else:
        micros = ticks * {"s": 1_000_000, "ms": 1000, "us": 1}[unit]
    return _fixed((micros - _EPOCH_OFFSET_US).astype(">i8"), missing)


def _rows(fields: list[_Field], n_rows: int) -> memoryview:
    """Every row, each field behind its length. When every row has the same layout (no nulls,
    texts of one length per column: the usual case of a chunk of scores) the rows are one
    structured array; otherwise each field is scattered to its offsets."""
    payload = [np.maximum(f.lengths, 0).astype(np.int64) for f in fields]
    if all((f.lengths == f.lengths[0]).all() for f in fields):
        return _uniform_rows(fields, n_rows)
    row_sizes = 2 + 4 * len(fields) + np.sum(payload, axis=0)
    ends = np.cumsum(row_sizes)
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    position = ends - row_sizes
    _put(out, position, np.full(n_rows, len(fields), dtype=">i2"))
    position = position + 2
    for f, size in zip(fields, payload, strict=True):
        _put(out, position, f.lengths.astype(">i4"))
        position = position + 4
        present = f.lengths >= 0
        if f.fixed is not None:
            _put(out, position[present], f.fixed[present])
        else:
            starts = f.offsets[f.codes[present]]
            _put_variable(out, position[present], f.blob, starts, size[present])
        position = position + size
    return out.data


def _put(out: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    """Write each of `values` (one width) at its position in `out`, as bytes."""
    out[positions[:, None] + np.arange(values.dtype.itemsize)] = _bytes(values)


def _put_variable(out: np.ndarray, positions: np.ndarray, blob: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
    """Copy `sizes[i]` bytes of `blob` from `starts[i]` to `positions[i]` of `out`, for every i."""
    total = int(sizes.sum())
    if total == 0:
        return
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    out[np.repeat(positions, sizes) + within] = blob[np.repeat(starts, sizes) + within]


def _uniform_rows(fields: list[_Field], n_rows: int) -> memoryview:
    """Rows of one layout: every row starts as a copy of one template (field count, lengths), then
    each field's values go in at once through a structured view with that field's offset."""
    sizes = [int(max(f.lengths[0], 0)) for f in fields]
    template = [np.array([len(fields)], dtype=">i2").tobytes()]
    names, formats, offsets, filled = [], [], [], []
    at = 2
    for i, (f, size) in enumerate(zip(fields, sizes, strict=True)):
        template.append(f.lengths[:1].astype(">i4").tobytes() + bytes(size))
        at += 4
        if size:
            names.append(f"value{i}")
            formats.append(f.fixed.dtype if f.fixed is not None else np.dtype(f"S{size}"))
            offsets.append(at)
            filled.append((f, size))
        at += size
    rows = np.empty((n_rows, at), dtype=np.uint8)
    rows[:] = np.frombuffer(b"".join(template), dtype=np.uint8)
    view = rows.view(np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": at}))[:, 0]
    for name, (f, size) in zip(names, filled, strict=True):
        if f.fixed is not None:
            view[name] = f.fixed
        else:
            # every distinct value has this size: a table of them, taken by code
            table = f.blob[f.offsets[:, None] + np.arange(size)].view(f"S{size}")[:, 0]
            view[name] = table[f.codes]
    return rows.data


def _bytes(values: np.ndarray) -> np.ndarray:
    """Fixed-width values as a (values, width) array of their bytes."""
    return np.ascontiguousarray(values).view(np.uint8).reshape(len(values), values.dtype.itemsize)
