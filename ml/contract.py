"""The raw data contract: every table, column, key and rule of the `raw` schema, declared once.

The DDL (`ml/sql/raw_tables.sql` is its generated copy), the loader's validation (`ml/load.py`)
and docs/data-contract.md all follow these declarations. Regenerate the SQL file with
`python -m ml.contract > ml/sql/raw_tables.sql`.

Checks hold when a value is null, as in PostgreSQL; `required` is what makes a column not null.
Foreign keys and cross-table rules are checked by the loader, not by constraints in the DDL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# How the loader parses and checks each PostgreSQL type of the contract.
INTEGER_BOUNDS = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


def type_kind(pg_type: str) -> str:
    """int, number, text, date, timestamp or boolean: how values of `pg_type` are parsed."""
    if pg_type in INTEGER_BOUNDS:
        return "int"
    if pg_type.startswith("numeric") or pg_type == "double precision":
        return "number"
    return {"text": "text", "date": "date", "timestamptz": "timestamp", "boolean": "boolean"}[pg_type]


def numeric_limit(pg_type: str) -> float | None:
    """The exclusive bound on |x| of numeric(p, s), 10^(p - s); None for other types."""
    if not pg_type.startswith("numeric("):
        return None
    precision, scale = (int(part) for part in pg_type[len("numeric(") : -1].split(","))
    return 10.0 ** (precision - scale)


# --- column checks: each renders itself as SQL and finds its violations in a frame -----------------


@dataclass(frozen=True)
class Range:
    """low <= x <= high (or < when open); either bound may be omitted."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def _bounds(self) -> list[str]:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return bounds

    def sql(self, column: str) -> str:
        return " and ".join(f"{column} {bound}" for bound in self._bounds())

    def reason(self, column: str) -> str:
        return "must be " + " and ".join(self._bounds())

    def violated(self, frame: pd.DataFrame, column: str) -> pd.Series:
        values = frame[column]
        ok = pd.Series(True, index=frame.index)
        if self.low is not None:
            ok &= values > self.low if self.low_open else values >= self.low
        if self.high is not None:
            ok &= values < self.high if self.high_open else values <= self.high
        return values.notna() & ~ok.fillna(True).astype(bool)


@dataclass(frozen=True)
class OneOf:
    """x is one of `values`."""

    values: tuple[str, ...]

    def sql(self, column: str) -> str:
        return f"{column} in ({', '.join(_literal(v) for v in self.values)})"

    def reason(self, column: str) -> str:
        return f"must be one of {', '.join(self.values)}"

    def violated(self, frame: pd.DataFrame, column: str) -> pd.Series:
        values = frame[column]
        return values.notna() & ~values.isin(self.values)


@dataclass(frozen=True)
class NotBefore:
    """x >= another column of the same row."""

    other: str

    def sql(self, column: str) -> str:
        return f"{column} >= {self.other}"

    def reason(self, column: str) -> str:
        return f"must not be before {self.other}"

    def violated(self, frame: pd.DataFrame, column: str) -> pd.Series:
        values, other = frame[column], frame[self.other]
        return values.notna() & other.notna() & (values < other).fillna(False).astype(bool)


@dataclass(frozen=True)
class RequiredWhen:
    """x is set when column `when` equals `value` (a null `when` counting as `default`)."""

    when: str
    value: str
    default: str | None = None

    def _when_sql(self) -> str:
        return f"coalesce({self.when}, {_literal(self.default)})" if self.default is not None else self.when

    def sql(self, column: str) -> str:
        return f"{self._when_sql()} <> {_literal(self.value)} or {column} is not null"

    def reason(self, column: str) -> str:
        empty = " or empty" if self.default == self.value else ""
        return f"is required when {self.when} is {self.value!r}{empty}"

    def violated(self, frame: pd.DataFrame, column: str) -> pd.Series:
        when = frame[self.when]
        if self.default is not None:
            when = when.fillna(self.default)
        return frame[column].isna() & (when == self.value).fillna(False).astype(bool)


Check = Range | OneOf | NotBefore | RequiredWhen


def _literal(value: str | None) -> str:
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


# --- tables, keys and rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # PostgreSQL type, as written in the DDL
    required: bool  # present in every loaded file and never null
    description: str
    checks: tuple[Check, ...] = ()

    @property
    def kind(self) -> str:
        return type_kind(self.type)


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    required: bool = True  # an optional table may be absent: it is then created empty

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


@dataclass(frozen=True)
class NotBeforeParent:
    """A cross-table rule: each row's `column` is at or after the earliest `parent_column` among
    the parent rows with the same key; with `parent_required`, a row without any such parent breaks it."""

    table: str
    column: str
    key: tuple[str, ...]
    parent: str
    parent_column: str
    parent_key: tuple[str, ...]
    parent_required: bool
    description: str


@dataclass(frozen=True)
class Contract:
    tables: tuple[Table, ...]
    rules: tuple[NotBeforeParent, ...] = field(default=())

    def table(self, name: str) -> Table:
        return next(table for table in self.tables if table.name == name)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)


def _c(name: str, type_: str, required: bool, description: str, *checks: Check) -> Column:
    return Column(name, type_, required, description, tuple(checks))


REQ, OPT = True, False
MONEY = "numeric(12, 2)"

RAW_CONTRACT = Contract(
    tables=(
        Table(
            "customers",
            "One row per customer (a business account).",
            (
                _c("customer_id", "bigint", REQ, "Primary key."),
                _c("business_type", "text", OPT, "Kind of business, for example horeca, trader, office."),
                _c("region", "text", OPT, "Sales region."),
                _c("signup_date", "date", OPT, "Day the customer signed up."),
            ),
            primary_key=("customer_id",),
        ),
        Table(
            "products",
            "One row per product.",
            (
                _c("product_id", "bigint", REQ, "Primary key."),
                _c("department", "text", OPT, "Department, the top of the product hierarchy."),
                _c("category", "text", REQ, "Product category; offers may target a category."),
                _c("price_tier", "smallint", OPT, "1 (budget) to 3 (premium).", Range(1, 3)),
                _c("is_own_brand", "boolean", OPT, "Own (private) label."),
                _c("is_fresh", "boolean", OPT, "Fresh (perishable) product."),
                _c("unit_price", MONEY, REQ, "List price per unit.", Range(0, low_open=True)),
                _c("unit_cost", MONEY, OPT, "Cost per unit.", Range(0)),
            ),
            primary_key=("product_id",),
        ),
        Table(
            "orders",
            "One row per order.",
            (
                _c("order_id", "bigint", REQ, "Primary key."),
                _c("customer_id", "bigint", REQ, "The customer who ordered."),
                _c("ordered_at", "timestamptz", REQ, "When the order was placed."),
            ),
            primary_key=("order_id",),
            foreign_keys=(ForeignKey(("customer_id",), "customers", ("customer_id",)),),
        ),
        Table(
            "order_items",
            "One row per order line (optional table).",
            (
                _c("order_id", "bigint", REQ, "The order."),
                _c("line_number", "integer", REQ, "Line within the order."),
                _c("product_id", "bigint", REQ, "The product bought."),
                _c("quantity", "integer", REQ, "Units bought.", Range(0, low_open=True)),
                _c("unit_price", MONEY, REQ, "Price actually paid per unit.", Range(0)),
                _c("is_promo", "boolean", OPT, "Bought under an offer or promotion."),
            ),
            primary_key=("order_id", "line_number"),
            foreign_keys=(
                ForeignKey(("order_id",), "orders", ("order_id",)),
                ForeignKey(("product_id",), "products", ("product_id",)),
            ),
            required=False,
        ),
        Table(
            "offers",
            "One row per offer.",
            (
                _c("offer_id", "bigint", REQ, "Primary key."),
                _c("product_id", "bigint", OPT, "The product of a product offer."),
                _c("category", "text", OPT, "The category of a category offer; with product_id, a whole-store offer."),
                _c("discount_type", "text", OPT, "percent or fixed; null means percent.", OneOf(("percent", "fixed"))),
                _c(
                    "discount_pct",
                    "numeric(5, 2)",
                    OPT,
                    "Percent off; set for percent offers.",
                    Range(0, 100, low_open=True, high_open=True),
                    RequiredWhen("discount_type", "percent", default="percent"),
                ),
                _c(
                    "reward_amount",
                    MONEY,
                    OPT,
                    "Fixed reward; set for fixed offers.",
                    Range(0, low_open=True),
                    RequiredWhen("discount_type", "fixed"),
                ),
                _c("min_spend", MONEY, OPT, "Minimum basket spend that earns the offer.", Range(0)),
                _c("margin_impact", "numeric(6, 4)", OPT, "Share of the normal gross margin given up.", Range(0, 1)),
                _c("starts_on", "date", REQ, "First day of the offer."),
                _c("ends_on", "date", REQ, "Last day of the offer (inclusive).", NotBefore("starts_on")),
                _c("target_business_type", "text", OPT, "The business type targeted; null: every type."),
            ),
            primary_key=("offer_id",),
            foreign_keys=(ForeignKey(("product_id",), "products", ("product_id",)),),
        ),
        Table(
            "impressions",
            "One row per offer shown to a customer.",
            (
                _c("impression_id", "bigint", REQ, "Primary key."),
                _c("customer_id", "bigint", REQ, "The customer shown the offer."),
                _c("offer_id", "bigint", REQ, "The offer shown."),
                _c("shown_at", "timestamptz", REQ, "When it was shown."),
                _c(
                    "propensity",
                    "double precision",
                    OPT,
                    "Probability that the logging policy showed this offer in this visit.",
                    Range(0, 1, low_open=True),
                ),
            ),
            primary_key=("impression_id",),
            foreign_keys=(
                ForeignKey(("customer_id",), "customers", ("customer_id",)),
                ForeignKey(("offer_id",), "offers", ("offer_id",)),
            ),
        ),
        Table(
            "redemptions",
            "One row per offer redeemed by a customer.",
            (
                _c("redemption_id", "bigint", REQ, "Primary key."),
                _c("customer_id", "bigint", REQ, "The customer who redeemed."),
                _c("offer_id", "bigint", REQ, "The offer redeemed."),
                _c("redeemed_at", "timestamptz", REQ, "When it was redeemed."),
            ),
            primary_key=("redemption_id",),
            foreign_keys=(
                ForeignKey(("customer_id",), "customers", ("customer_id",)),
                ForeignKey(("offer_id",), "offers", ("offer_id",)),
            ),
        ),
        Table(
            "interaction_events",
            "Reactions to impressions: view, click, dismiss (optional table).",
            (
                _c("event_id", "bigint", REQ, "Primary key."),
                _c("impression_id", "bigint", REQ, "The impression reacted to."),
                _c("event_type", "text", REQ, "view, click or dismiss.", OneOf(("view", "click", "dismiss"))),
                _c("event_at", "timestamptz", REQ, "When it happened."),
            ),
            primary_key=("event_id",),
            foreign_keys=(ForeignKey(("impression_id",), "impressions", ("impression_id",)),),
            required=False,
        ),
    ),
    rules=(
        NotBeforeParent(
            "redemptions",
            "redeemed_at",
            ("customer_id", "offer_id"),
            "impressions",
            "shown_at",
            ("customer_id", "offer_id"),
            parent_required=True,
            description="a redemption comes at or after the customer's first impression of that offer",
        ),
        NotBeforeParent(
            "interaction_events",
            "event_at",
            ("impression_id",),
            "impressions",
            "shown_at",
            ("impression_id",),
            parent_required=False,
            description="an event comes at or after its impression",
        ),
    ),
)


# --- DDL ---------------------------------------------------------------------------------------------


def utc_date_expression(column: str) -> str:
    """The UTC date of a timestamptz column, written exactly as the staging views derive it."""
    return f"({column} at time zone 'UTC')::date"


def utc_date_index(table: str, column: str) -> str:
    """The name of the index on a timestamptz column's UTC date (`table_ddl`)."""
    return f"{table}_{column}_utc_date_idx"


def table_ddl(table: Table, schema: str = "{schema}") -> str:
    """`create table if not exists` for one table: primary key, not null, check constraints.

    Every timestamptz column also gets an index on its UTC date. The staging views derive that
    date and a daily build reads its recent days by it (`ordered_date >= D - 8`): through the
    index it reads the week's rows, where it would read the whole table, and the index's statistics
    on the expression estimate those rows, where the planner would guess a third of the table and
    scan where it could look rows up (docs/performance.md, "the raw tables' dates indexed").
    """
    lines = []
    for column in table.columns:
        parts = [column.name, column.type]
        if column.required:
            parts.append("not null")
        parts += [f"check ({check.sql(column.name)})" for check in column.checks]
        lines.append("    " + " ".join(parts) + ",")
    lines.append(f"    primary key ({', '.join(table.primary_key)})")
    indexes = [
        f"create index if not exists {utc_date_index(table.name, column.name)}\n"
        f"    on {schema}.{table.name} (({utc_date_expression(column.name)}));\n"
        for column in table.columns
        if column.type == "timestamptz"
    ]
    return f"create table if not exists {schema}.{table.name} (\n" + "\n".join(lines) + "\n);\n" + "".join(indexes)


def ddl(contract: Contract = RAW_CONTRACT, schema: str = "{schema}") -> str:
    """The DDL of every table; `{schema}` is left as a placeholder for psycopg's `sql.SQL.format`."""
    header = (
        "-- The raw data contract: generated from ml/contract.py, do not edit by hand.\n"
        "-- Regenerate with `python -m ml.contract > ml/sql/raw_tables.sql`.\n"
        "-- {schema} is replaced with the configured raw schema, quoted.\n"
    )
    return header + "\n".join(table_ddl(table, schema) for table in contract.tables)


if __name__ == "__main__":
    print(ddl(), end="")
