"""Progress of a long load as log lines: rows done and rate, at most one line every few seconds.

DuckDB's own progress bar is off everywhere (it floods a step's captured output with carriage
returns); where the engine sees a stream of batches, a ``Progress`` reports through the step's
logger instead, so the Dagster UI shows how far a long extract has come.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PROGRESS_EVERY_SECONDS = 10.0


class Progress:
    """Counts rows as batches pass and logs ``<what>: <rows> rows so far, <rate> rows/s`` once
    ``every_seconds`` have passed since the last line (none for a load that ends sooner)."""

    def __init__(
        self,
        what: str,
        log: Callable[[str], None],
        *,
        every_seconds: float = PROGRESS_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.log, self.every, self.clock = what, log, every_seconds, clock
        self.rows = 0
        self.started = self.last = clock()

    def add(self, rows: int) -> None:
        self.rows += rows
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            rate = self.rows / max(now - self.started, 1e-9)
            self.log(f"{self.what}: {self.rows:,} rows so far, {rate:,.0f} rows/s")
