"""Benchmark: generate the synthetic world and load it into `raw` and `truth` with COPY.

    .venv/bin/python bench/generate_and_load.py --customers 100000

Runs against the configured warehouse (the embedded server by default: start it with
`offerrank db start`) and replaces its raw tables. Prints seconds, rows per second and the
process's peak memory for each phase.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.world_options import add_world_options, world_params
from ml import data
from ml.config import load_settings
from ml.generate import generate_all


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_options(parser, customers=100_000, offers=300)
    args = parser.parse_args()
    params = world_params(args)
    settings = load_settings()

    started = time.perf_counter()
    frames, truth = generate_all(params)
    generated = time.perf_counter()
    rows = sum(len(frame) for frame in [*frames.values(), *truth.values()])
    _report("generate", generated - started, rows)
    with data.connect(settings) as conn, conn.transaction():
        counts = data.replace_raw_tables(conn, settings.raw_schema, frames)
        counts |= data.replace_truth_tables(conn, settings.truth_schema, truth)
    loaded = time.perf_counter()
    _report("load", loaded - generated, rows)
    _report("total", loaded - started, rows)
    print(", ".join(f"{table} {n:,}" for table, n in counts.items()))


def _report(phase: str, seconds: float, rows: int) -> None:
    print(f"{phase:<9} {seconds:7.1f}s  {rows / seconds:>12,.0f} rows/s  peak {_peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
