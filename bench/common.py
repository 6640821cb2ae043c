"""What the benchmarks share: timing (best of repeats on one clock) and the sample manuals to measure on."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def best_of(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """The fastest of `repeats` runs of `fn`, in seconds of `clock` (wall by default; `time.process_time` for CPU
    seconds on a shared machine, where both sides of a ratio are single-threaded)."""
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        fn()
        best = min(best, clock() - started)
    return best


@contextlib.contextmanager
def sample_manuals_or(manuals: Path | None) -> Iterator[Path]:
    """`manuals` when given, else the bundled sample manuals rendered into a temporary folder for the run."""
    if manuals is not None:
        yield Path(manuals)
        return
    from c64_pipeline.demo.sample_manuals import render_sample_manuals

    with tempfile.TemporaryDirectory() as tmp:
        render_sample_manuals(Path(tmp))
        yield Path(tmp)
