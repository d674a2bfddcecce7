"""One benchmark figure: a stage's wall seconds, rows per second and peak memory.

Peak memory is the benchmark process's own peak resident set during the stage: Linux's high-water
mark (VmHWM) is reset to the current resident set when the stage starts (`/proc/self/clear_refs`),
so each stage reports its own peak (with what the process already held), not the run's. Memory of
other processes (the PostgreSQL server, dbt's subprocesses) is not in it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
# Writing 5 to clear_refs resets the peak resident set size (proc(5)).
_RESET_PEAK = "5"


@dataclass(frozen=True)
class Figure:
    """How one method did one stage: `method` tells offerrank's own path from a baseline."""

    stage: str
    method: str
    rows: int
    seconds: float
    peak_rss_mb: float | None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 else None


@dataclass
class Measurement:
    """Filled while a stage runs: the rows it moved; `figure` is set when it ends."""

    stage: str
    method: str
    rows: int = 0
    figure: Figure | None = field(default=None, init=False)


def _peak_rss_mb() -> float | None:
    try:
        status = _STATUS.read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK)
    except OSError:
        return False
    return True


@contextmanager
def measure(stage: str, method: str) -> Iterator[Measurement]:
    """Time the block and record its peak memory; set `rows` on the yielded measurement.

    Where the peak cannot be reset (not Linux), the figure's peak is None rather than the
    process's peak so far, which would belong to an earlier stage.
    """
    measurement = Measurement(stage, method)
    resettable = _reset_peak_rss()
    started = time.perf_counter()
    yield measurement
    seconds = time.perf_counter() - started
    peak = _peak_rss_mb() if resettable else None
    measurement.figure = Figure(stage, method, measurement.rows, seconds, peak)
