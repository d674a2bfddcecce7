"""Read a directory of raw data files and hold them to the raw data contract (`ml/contract.py`).

`read_directory` reads `<table>.csv` or `<table>.parquet` per table; `conform` checks every rule
of the contract at once and returns frames typed for COPY, or raises `ContractError` listing the
problems by file, row and column. Everything is vectorised: a check is a boolean mask over a
column, and only the few rows shown in the message are turned into text.

Row numbers are the ones a spreadsheet shows: in a CSV file the header is row 1, so the first
data row is row 2; in a parquet file the first row is row 1. A frame not read by
`read_directory` counts its rows from 1 and is named after its table.

Timestamps are ISO 8601; one without an offset is taken as UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.contract import (
    INTEGER_BOUNDS,
    RAW_CONTRACT,
    Column,
    Contract,
    ForeignKey,
    NotBeforeParent,
    Table,
    numeric_limit,
)

MAX_LINES = 20  # problems listed in a ContractError's message
MAX_LINES_PER_CHECK = 5  # so that one bad column does not hide every other problem
FORMATS = (".csv", ".parquet")
BOOLEAN_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
                 "false": False, "f": False, "no": False, "n": False, "0": False}  # fmt: skip
TYPE_REASONS = {
    "int": "not an integer",
    "number": "not a number",
    "date": "not a date (YYYY-MM-DD)",
    "timestamp": "not a timestamp (ISO 8601, for example 2026-06-01T09:30:00Z)",
    "boolean": "not a boolean (true/false)",
}


@dataclass(frozen=True)
class Problem:
    """One way the data breaks the contract; row and column are None when they do not apply."""

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}"


class ContractError(ValueError):
    """The data does not follow the raw data contract; `problems` lists the first ones, `total` counts all."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        lines = [f"  {problem}" for problem in problems]
        if self.total > len(problems):
            lines.append(f"  and {self.total - len(problems):,} more")
        noun = "problem" if self.total == 1 else "problems"
        super().__init__(
            f"the data does not follow the raw data contract (docs/data-contract.md), {self.total:,} {noun}:\n"
            + "\n".join(lines)
        )


@dataclass(frozen=True)
class _Source:
    file: str
    first_row: int  # the row number of the frame's first row

    @classmethod
    def of(cls, table: str, frame: pd.DataFrame) -> _Source:
        return cls(frame.attrs.get("file", table), frame.attrs.get("first_row", 1))


class _Problems:
    """Collects problems: all are counted, the first few of each check are kept as text."""

    def __init__(self) -> None:
        self.listed: list[Problem] = []
        self.total = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        if len(self.listed) < MAX_LINES:
            self.listed.append(problem)

    def add_rows(
        self,
        source: _Source,
        mask: pd.Series | np.ndarray,
        column: str,
        reason: str | Callable[[np.ndarray], list[str]],
    ) -> None:
        """One problem per True in `mask` (positions in the frame); `reason` may be a function of
        the positions shown, so that only those are formatted."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if len(positions) == 0:
            return
        shown = positions[: max(0, min(MAX_LINES_PER_CHECK, MAX_LINES - len(self.listed)))]
        reasons = [reason] * len(shown) if isinstance(reason, str) else reason(shown)
        for position, text in zip(shown, reasons, strict=True):
            self.listed.append(Problem(source.file, source.first_row + int(position), column, text))
        self.total += len(positions)

    def raise_if_any(self) -> None:
        if self.total:
            raise ContractError(self.listed, self.total)


# --- reading ------------------------------------------------------------------------------------------


def read_directory(path: str | Path, contract: Contract = RAW_CONTRACT) -> dict[str, pd.DataFrame]:
    """Read `<table>.csv` or `<table>.parquet` for each table found in `path` (hidden files ignored).

    CSV is read as text (UTF-8, a header row, comma-separated, an empty field is null) so that
    `conform` can name each value it cannot parse. Unknown files, a table given in both formats
    and unreadable files raise ContractError. Each frame's `attrs` carry its file name and the row
    number of its first row.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ContractError([Problem(str(directory), None, None, "not a directory")])
    problems = _Problems()
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in FORMATS and entry.stem in contract.table_names:
            found.setdefault(entry.stem, []).append(entry)
        else:
            expected = ", ".join(contract.table_names)
            problems.add(
                Problem(entry.name, None, None, f"unknown file: expected <table>.csv or <table>.parquet for {expected}")
            )
    for table, entries in found.items():
        if len(entries) > 1:
            names = " and ".join(entry.name for entry in entries)
            problems.add(Problem(names, None, None, f"table {table} is given twice: keep one file"))
    problems.raise_if_any()
    frames = {}
    for table, (entry,) in found.items():
        try:
            frame = _read_file(entry)
        except (ValueError, OSError, pa.ArrowException) as err:
            problems.add(Problem(entry.name, None, None, f"cannot be read: {err}"))
            continue
        frame.attrs = {"file": entry.name, "first_row": 2 if entry.suffix.lower() == ".csv" else 1}
        frames[table] = frame
    problems.raise_if_any()
    return frames


def _read_file(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    return pd.read_parquet(path, dtype_backend="numpy_nullable")


# --- validation ----------------------------------------------------------------------------------------


def validate(frames: Mapping[str, pd.DataFrame], contract: Contract = RAW_CONTRACT) -> None:
    """Raise ContractError listing every way `frames` (table name -> frame) break the contract."""
    conform(frames, contract)


def conform(frames: Mapping[str, pd.DataFrame], contract: Contract = RAW_CONTRACT) -> dict[str, pd.DataFrame]:
    """Check `frames` against the contract and return them typed for COPY (only the columns given).

    Raises ContractError when any rule is broken. The checks, in order: tables and columns,
    types, required values, column checks, primary keys, foreign keys, cross-table rules.
    """
    problems = _Problems()
    for name in sorted(set(frames) - set(contract.table_names)):
        problems.add(Problem(_Source.of(name, frames[name]).file, None, None, "unknown table"))
    for table in contract.tables:
        if table.required and table.name not in frames:
            problems.add(Problem(f"{table.name}.csv or {table.name}.parquet", None, None, "required table missing"))

    typed: dict[str, pd.DataFrame] = {}
    sources: dict[str, _Source] = {}
    given: dict[str, list[str]] = {}
    for table in contract.tables:
        if table.name not in frames:
            continue
        frame, source = frames[table.name], _Source.of(table.name, frames[table.name])
        sources[table.name] = source
        for name in frame.columns:
            if name not in table.column_names:
                problems.add(Problem(source.file, None, str(name), "unknown column (a typo?)"))
        for column in table.columns:
            if column.required and column.name not in frame.columns:
                problems.add(Problem(source.file, None, column.name, "required column missing"))
        given[table.name] = [c for c in table.column_names if c in frame.columns]
        typed[table.name] = _typed_table(table, frame.reset_index(drop=True), source, problems)

    for table in contract.tables:
        if table.name in typed:
            _check_columns(table, typed[table.name], sources[table.name], problems)
            _check_primary_key(table, typed[table.name], given[table.name], sources[table.name], problems)
    for table in contract.tables:
        for key in table.foreign_keys if table.name in typed else ():
            _check_foreign_key(key, table, typed, given, sources[table.name], problems)
    for rule in contract.rules:
        if rule.table in typed and rule.parent in typed:
            _check_rule(rule, typed, given, sources[rule.table], problems)
    problems.raise_if_any()
    return {name: _for_copy(contract.table(name), typed[name][given[name]]) for name in typed}


def _typed_table(table: Table, frame: pd.DataFrame, source: _Source, problems: _Problems) -> pd.DataFrame:
    """Every contract column in its type (absent ones all null); values that do not parse become null."""
    columns = {}
    for column in table.columns:
        if column.name not in frame.columns:
            columns[column.name] = _convert(column, pd.Series([None] * len(frame), dtype=object))[0]
            continue
        raw = frame[column.name]
        values, unparsed = _convert(column, raw)
        problems.add_rows(
            source,
            unparsed,
            column.name,
            lambda rows, raw=raw, kind=column.kind: [f"{TYPE_REASONS[kind]}: {_show(raw.iloc[r])}" for r in rows],
        )
        if column.required:
            problems.add_rows(source, raw.isna(), column.name, "missing value (the column is required)")
        limit = _out_of_range(column, values)
        problems.add_rows(source, limit, column.name, f"out of range for {column.type}")
        columns[column.name] = values.mask(limit)
    return pd.DataFrame(columns, index=frame.index)


def _show(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        text = _iso(value) if value.tz is not None else value.date().isoformat()
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(column: Column, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`raw` in the column's type, and the mask of values given that could not be converted."""
    present = raw.notna()
    textual = raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype)
    text = raw.where(present).astype(str).str.strip().where(present) if textual else None
    kind = column.kind
    if kind == "text":
        return raw.astype(str).where(present), pd.Series(False, index=raw.index)
    if kind == "int":
        if textual:
            ok = text.str.fullmatch(r"[+-]?\d{1,18}").fillna(False).astype(bool)
            digits = text.where(ok).str.removeprefix("+")
            values = pd.Series(
                pa.array(digits, from_pandas=True, type=pa.string()).cast(pa.int64()).to_pandas(),
                index=raw.index,
            ).astype("Int64")
        else:
            numbers = pd.to_numeric(raw, errors="coerce").astype("Float64")
            ok = (numbers.notna() & (numbers % 1 == 0) & (numbers.abs() < 2**63)).fillna(False).astype(bool)
            values = numbers.where(ok).astype("Int64")
        return values, present & ~ok
    if kind == "number":
        source = text if textual else raw
        numbers = pd.to_numeric(source, errors="coerce").astype("Float64").astype(float)
        ok = np.isfinite(numbers)
        return numbers.where(ok), present & ~ok
    if kind == "date":
        if textual:
            values = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        else:
            values = pd.to_datetime(raw, errors="coerce")
            values = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
            values = values.dt.normalize()
        values = values.astype("datetime64[us]")
        return values, present & values.isna()
    if kind == "timestamp":
        if textual:
            values = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        else:
            values = pd.to_datetime(raw, errors="coerce")
            values = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        values = values.astype("datetime64[us, UTC]")
        return values, present & values.isna()
    # boolean
    if textual:
        values = text.str.lower().map(BOOLEAN_WORDS).astype("boolean")
    elif pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("boolean")
    else:
        values = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    return values, present & values.isna()


def _out_of_range(column: Column, values: pd.Series) -> pd.Series:
    """Values that parse but do not fit the PostgreSQL type (smallint, integer, numeric(p, s))."""
    if column.type in ("smallint", "integer"):
        bound = INTEGER_BOUNDS[column.type]
        return ((values < -bound) | (values >= bound)).fillna(False).astype(bool)
    limit = numeric_limit(column.type)
    if limit is not None:
        scale = int(column.type.rstrip(")").split(",")[1])
        return (values.round(scale).abs() >= limit).fillna(False).astype(bool)
    return pd.Series(False, index=values.index)


def _check_columns(table: Table, frame: pd.DataFrame, source: _Source, problems: _Problems) -> None:
    for column in table.columns:
        for check in column.checks:
            mask = check.violated(frame, column.name)
            problems.add_rows(
                source,
                mask,
                column.name,
                lambda rows, check=check, name=column.name: [
                    check.reason(name) + ("" if pd.isna(value) else f", got {_show(value)}")
                    for value in frame[name].iloc[rows]
                ],
            )


def _key_text(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], row: int) -> str:
    return ", ".join(f"{name}={frame[name].iloc[row]}" for name in columns)


def _check_primary_key(
    table: Table, frame: pd.DataFrame, given: list[str], source: _Source, problems: _Problems
) -> None:
    key = list(table.primary_key)
    if not set(key) <= set(given):
        return
    keyed = frame[key].notna().all(axis=1)
    repeated = frame.duplicated(key, keep="first") & keyed
    if not repeated.any():
        return
    first = pd.Series(np.arange(len(frame)), index=frame.index).groupby([frame[c] for c in key]).transform("min")

    def reasons(rows: np.ndarray) -> list[str]:
        return [
            f"duplicate primary key ({_key_text(frame, key, r)}), also at row {source.first_row + int(first.iloc[r])}"
            for r in rows
        ]

    problems.add_rows(source, repeated, ", ".join(key), reasons)


def _check_foreign_key(
    key: ForeignKey,
    table: Table,
    typed: dict[str, pd.DataFrame],
    given: dict[str, list[str]],
    source: _Source,
    problems: _Problems,
) -> None:
    if key.parent not in typed or not set(key.columns) <= set(given[table.name]):
        return
    child, parent = typed[table.name], typed[key.parent]
    child_key = child[list(key.columns)]
    parent_key = parent[list(key.parent_columns)].dropna()
    set_rows = child_key.notna().all(axis=1)
    if len(key.columns) == 1:
        found = child_key.iloc[:, 0].isin(parent_key.iloc[:, 0])
    else:
        index = pd.MultiIndex.from_frame(parent_key)
        found = pd.Series(pd.MultiIndex.from_frame(child_key).isin(index), index=child.index)
    orphan = set_rows & ~found
    problems.add_rows(
        source,
        orphan,
        ", ".join(key.columns),
        lambda rows: [f"{_key_text(child, key.columns, r)} is not in {key.parent}" for r in rows],
    )


def _check_rule(
    rule: NotBeforeParent,
    typed: dict[str, pd.DataFrame],
    given: dict[str, list[str]],
    source: _Source,
    problems: _Problems,
) -> None:
    """A row's time is at or after the earliest time of its parent rows with the same key."""
    if not set(rule.key) | {rule.column} <= set(given[rule.table]):
        return
    child, parent = typed[rule.table], typed[rule.parent]
    earliest = parent.groupby(list(rule.parent_key))[rule.parent_column].min().rename("__earliest")
    earliest.index = earliest.index.set_names(list(rule.key))
    merged = child[[*rule.key, rule.column]].merge(earliest, left_on=list(rule.key), right_index=True, how="left")
    keyed = merged[list(rule.key)].notna().all(axis=1).to_numpy()
    has_parent = merged["__earliest"].notna().to_numpy()
    before = (merged[rule.column] < merged["__earliest"]).fillna(False).to_numpy(dtype=bool)
    at = f"{rule.parent}.{rule.parent_column}"
    if rule.parent_required:
        problems.add_rows(
            source,
            keyed & ~has_parent,
            rule.column,
            lambda rows: [
                f"no row in {rule.parent} with {_key_text(merged, rule.key, r)}: {rule.description}" for r in rows
            ],
        )
    problems.add_rows(
        source,
        keyed & has_parent & before,
        rule.column,
        lambda rows: [
            f"{_iso(merged[rule.column].iloc[r])} is before the earliest {at} {_iso(merged['__earliest'].iloc[r])}"
            f" with {_key_text(merged, rule.key, r)}: {rule.description}"
            for r in rows
        ],
    )


def _iso(value: pd.Timestamp) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _for_copy(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as Arrow date32, so that COPY receives YYYY-MM-DD; the rest is already in its type."""
    out = frame.copy()
    for name in out.columns:
        if table.column(name).kind == "date":
            out[name] = out[name].astype(pd.ArrowDtype(pa.timestamp("us"))).astype(pd.ArrowDtype(pa.date32()))
    return out
