"""Benchmark: a one-day incremental refresh of the feature marts against a full rebuild.

    .venv/bin/python bench/feature_refresh.py --customers 20000 --days 120

Generates a world with `--days` of history into the configured warehouse (the embedded server
by default: start it with `offerrank db start`; this replaces its raw tables), builds the
features as of the day before the last as-of date, then times `dbt run` for the last date
alone (incremental) and `dbt run --full-refresh` for the same date. Prints each run's wall
seconds and its slowest models (dbt's own timings), and the ratios of the two runs.

`--keep-raw` skips generating and loading: it measures again the raw tables an earlier run with
the same world options loaded (timings on a busy machine vary; generating takes minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.world_options import add_world_options, world_params
from ml import data
from ml.config import PROFILES_DIR, WAREHOUSE_DIR, load_settings
from ml.generate import generate_all


def _dbt_run(as_of: dt.date, *flags: str) -> tuple[float, list[tuple[str, float]]]:
    dbt = str(Path(sys.executable).parent / "dbt")
    as_of_var = json.dumps({"as_of_date": as_of.isoformat()})
    started = time.perf_counter()
    subprocess.run(
        [dbt, "run", *flags, "--profiles-dir", str(PROFILES_DIR), "--vars", as_of_var, "--quiet"],
        cwd=WAREHOUSE_DIR,
        check=True,
    )
    wall = time.perf_counter() - started
    results = json.loads((WAREHOUSE_DIR / "target" / "run_results.json").read_text())["results"]
    timings = sorted(((r["unique_id"].split(".")[-1], r["execution_time"]) for r in results), key=lambda t: -t[1])
    return wall, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_options(parser, customers=20_000, offers=200)
    parser.add_argument("--keep-raw", action="store_true", help="measure the raw tables already loaded")
    args = parser.parse_args()
    params = world_params(args)
    if not args.keep_raw:
        frames, _ = generate_all(params)
        with data.connect(load_settings()) as conn, conn.transaction():
            counts = data.replace_raw_tables(conn, load_settings().raw_schema, frames)
        print(f"{params}: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()))

    as_of = params.end_date + dt.timedelta(days=1)
    _dbt_run(as_of - dt.timedelta(days=1), "--full-refresh")
    runs = {"one-day incremental": _dbt_run(as_of), "full rebuild": _dbt_run(as_of, "--full-refresh")}
    for name, (wall, timings) in runs.items():
        slowest = ", ".join(f"{model} {seconds:.1f}s" for model, seconds in timings[:6])
        print(f"{name:<20} {wall:7.1f}s wall, models {sum(s for _, s in timings):7.1f}s  ({slowest})")
    incremental, full = (sum(s for _, s in runs[name][1]) for name in runs)
    print(f"one-day refresh / full rebuild, model time of every model: {incremental / full:.0%}")
    # Wall time adds dbt's own start (parsing, connections, hooks): a fixed cost of every run.
    print(f"one-day refresh / full rebuild, wall time: {runs['one-day incremental'][0] / runs['full rebuild'][0]:.0%}")
    # fct_scoring_candidates and the views cost one day's work in both runs: the ratio that
    # measures the incremental design is the one over the incremental models.
    manifest = json.loads((WAREHOUSE_DIR / "target" / "manifest.json").read_text())
    incremental_models = {n["name"] for n in manifest["nodes"].values() if n["config"]["materialized"] == "incremental"}
    incremental, full = (sum(s for model, s in runs[name][1] if model in incremental_models) for name in runs)
    print(f"one-day refresh / full rebuild, model time of the incremental models: {incremental / full:.0%}")


if __name__ == "__main__":
    main()
