"""The harness's figures as a table, as JSON, and judged against the targets of issue 9.

Every verdict is computed from the run's own figures; a target the run cannot judge (too small a
scale, too few training examples) says why instead of a verdict.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from bench.harness import DAILY_STAGES, DAILY_TOTAL_STAGES, BenchRun
from bench.measure import Figure

# The scale the daily-run target is set at: 100k customers with about 50 candidates each.
TARGET_CUSTOMERS = 100_000
TARGET_CANDIDATES_PER_CUSTOMER = 50
TRAINING_TARGET_EXAMPLES = 1_000_000
JSON_VERSION = 1


@dataclass(frozen=True)
class Target:
    """One target of issue 9, item 2: the measured value, the bound, and whether it is met
    (None: this run cannot judge it, `note` says why)."""

    name: str
    value: float | None
    bound: str
    met: bool | None
    note: str = ""


def _rate(figure: Figure | None) -> float | None:
    return figure.rows_per_second if figure is not None else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def daily_seconds(run: BenchRun, stages: tuple[str, ...]) -> float:
    return sum(figure.seconds for stage in stages if (figure := run.figure(stage)) is not None)


def daily_peak_mb(run: BenchRun) -> float | None:
    peaks = [f.peak_rss_mb for stage in DAILY_STAGES if (f := run.figure(stage)) and f.peak_rss_mb is not None]
    return max(peaks) if peaks else None


def targets(run: BenchRun) -> list[Target]:
    """Each target of issue 9 item 2 this run measures, judged from its figures."""
    write, limit = run.figure("write_back"), run.figure("write_back", "bare_binary_copy")
    write_vs_limit = _ratio(_rate(write), _rate(limit))
    write_vs_to_sql = _ratio(_rate(write), _rate(run.figure("write_back", "to_sql")))
    score_vs_predict = _ratio(_rate(run.figure("score")), _rate(run.figure("predict", "bare_predict")))
    daily = daily_seconds(run, DAILY_TOTAL_STAGES)
    peak = daily_peak_mb(run)
    at_scale = run.params.customers >= TARGET_CUSTOMERS
    small = "" if at_scale else f"set for {TARGET_CUSTOMERS:,} customers; this run has {run.params.customers:,}"
    full, incremental = run.figure("dbt_full_build"), run.figure("dbt_incremental")
    refresh = _ratio(incremental.seconds if incremental else None, full.seconds if full else None)
    train = run.figure("train")
    examples = train.rows if train else 0
    enough = examples >= TRAINING_TARGET_EXAMPLES
    per_customer = run.facts.get("candidates_per_customer")
    return [
        Target("write-back / bare binary COPY (rows/s)", write_vs_limit, ">= 0.70", _at_least(write_vs_limit, 0.7)),
        Target(
            "write-back / to_sql (rows/s)",
            write_vs_to_sql,
            ">= 20",
            _at_least(write_vs_to_sql, 20),
            "to_sql on a sample" if run.facts.get("to_sql_sample") else "",
        ),
        Target(
            "scoring end to end / bare predict (rows/s)", score_vs_predict, ">= 0.70", _at_least(score_vs_predict, 0.7)
        ),
        Target(
            f"daily run ({' + '.join(DAILY_TOTAL_STAGES)}), s",
            daily,
            "< 600",
            daily < 600 if at_scale else None,
            small,
        ),
        Target(
            "daily run peak memory of this process, MB",
            peak,
            "< 4096",
            peak < 4096 if at_scale and peak is not None else None,
            small or "the benchmark process only: not the server's nor dbt's",
        ),
        Target(
            "incremental refresh / full rebuild (s)", refresh, "<= 0.15", None if refresh is None else refresh <= 0.15
        ),
        Target(
            "training stage, s",
            train.seconds if train else None,
            f"< 60 on >= {TRAINING_TARGET_EXAMPLES:,} examples",
            train.seconds < 60 if train and enough else None,
            f"{examples:,} examples" + ("" if enough else f": fewer than {TRAINING_TARGET_EXAMPLES:,}, not judged"),
        ),
        Target(
            "candidates per customer",
            per_customer,
            f"about {TARGET_CANDIDATES_PER_CUSTOMER}",
            None,
            "the scale the targets assume, not a target",
        ),
    ]


def figure_rows(run: BenchRun) -> list[dict[str, object]]:
    """The figures with their rows per second and the ratio to their stage's reference."""
    rows = []
    for figure in run.figures:
        reference = run.reference(figure)
        rows.append(
            {
                "stage": figure.stage,
                "method": figure.method,
                "rows": figure.rows,
                "seconds": round(figure.seconds, 3),
                "rows_per_second": None if figure.rows_per_second is None else round(figure.rows_per_second, 1),
                "peak_rss_mb": None if figure.peak_rss_mb is None else round(figure.peak_rss_mb, 1),
                "ratio_to_reference": _ratio(_rate(figure), _rate(reference)),
                "reference": None if reference is None else f"{reference.stage}/{reference.method}",
            }
        )
    return rows


def as_json(run: BenchRun, machine: dict[str, object], commit: str, started: dt.datetime) -> dict[str, object]:
    """The run as a JSON document with stable keys."""
    return {
        "version": JSON_VERSION,
        "date": started.isoformat(timespec="seconds"),
        "git_commit": commit,
        "machine": machine,
        "scale": {**asdict(run.params), "end_date": run.params.end_date.isoformat()},
        "run_date": run.run_date.isoformat() if run.run_date else None,
        "figures": figure_rows(run),
        "daily_run": {
            "stages": list(DAILY_TOTAL_STAGES),
            "seconds": daily_seconds(run, DAILY_TOTAL_STAGES),
            "all_stages": list(DAILY_STAGES),
            "all_stages_seconds": daily_seconds(run, DAILY_STAGES),
            "peak_rss_mb": daily_peak_mb(run),
        },
        "targets": [asdict(target) for target in targets(run)],
        "facts": run.facts,
        "pipeline_runs": [{**row, "run_date": str(row["run_date"])} for row in run.pipeline_runs],
    }


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(run: BenchRun) -> str:
    """The figures as one table: stage, method, rows, seconds, rows/s, peak MB, ratio to the reference."""
    header = f"{'stage':<16}{'method':<20}{'rows':>12}{'seconds':>10}{'rows/s':>13}{'peak MB':>10}{'ratio':>8}"
    lines = [header, "-" * len(header)]
    for row in figure_rows(run):
        lines.append(
            f"{row['stage']:<16}{row['method']:<20}{row['rows']:>12,}{row['seconds']:>10.2f}"
            f"{_cell(row['rows_per_second'], 0):>13}{_cell(row['peak_rss_mb'], 0):>10}"
            f"{_cell(row['ratio_to_reference'], 2):>8}"
        )
    lines.append(
        f"daily run ({' + '.join(DAILY_TOTAL_STAGES)}): {daily_seconds(run, DAILY_TOTAL_STAGES):.1f} s;"
        f" every stage ({' + '.join(DAILY_STAGES)}): {daily_seconds(run, DAILY_STAGES):.1f} s;"
        f" peak {_cell(daily_peak_mb(run), 0)} MB"
    )
    return "\n".join(lines)


def verdicts(run: BenchRun) -> str:
    """Each target with the measured value and whether it is met."""
    lines = ["targets (issue 9):"]
    for target in targets(run):
        verdict = {True: "met", False: "NOT met", None: "not judged"}[target.met]
        value = _cell(target.value, 3 if target.value is not None and abs(target.value) < 10 else 1)
        note = f"  ({target.note})" if target.note else ""
        lines.append(f"  {target.name:<50}{value:>10}  {target.bound:<34}{verdict:<11}{note}".rstrip())
    return "\n".join(lines)
