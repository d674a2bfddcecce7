"""`offerrank bench`: run the harness, print its table and verdicts, write its JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from ml.config import Settings
from ml.generate import GeneratorParams

DEFAULT_CUSTOMERS = 5_000
# About 50 candidates per customer on the run date at 120 days (the scale issue 9's targets assume).
DEFAULT_OFFERS = 400
DEFAULT_TO_SQL_ROWS = 100_000


def bench(settings: Settings, params: GeneratorParams, to_sql_rows: int, json_path: Path | None) -> int:
    """Run the harness on `params`' world (it replaces the warehouse's data) and report it."""
    # the harness loads LightGBM, SQLAlchemy and Dagster: only for this command, not for every `offerrank`
    from bench.harness import commit, machine, run_benchmark
    from bench.report import as_json, table, verdicts

    started = dt.datetime.now(dt.UTC)
    before, version = machine(), commit()  # the code that runs, not the checkout's state when it ends

    def log(step: str) -> None:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {step}", file=sys.stderr, flush=True)

    run = run_benchmark(settings, params, to_sql_rows, log)
    after = os.getloadavg()
    document = as_json(run, {**before, "load_average_after": list(after)}, version, started)
    print(
        f"{params}, run date {run.run_date}; load average before {_load(before['load_average'])}, after {_load(after)}"
    )
    print(table(run))
    print(verdicts(run))
    path = json_path or settings.home / "bench" / f"bench-{started:%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


def _load(load: list[float] | tuple[float, ...]) -> str:
    return " ".join(f"{value:.2f}" for value in load)
