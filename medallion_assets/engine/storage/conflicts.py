"""Retry a read-compute-commit cycle when a Delta commit loses a race.

Our own writers serialise on per-table locks, but another tool writing the same table does not
take them. Delta then rejects the later commit (``CommitFailedError``) instead of losing data;
the right response is to re-read and recompute, so the caller passes the *whole* cycle, not just
the commit, and this helper runs it again after a short jittered pause.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from deltalake.exceptions import CommitFailedError

T = TypeVar("T")


def retry_on_commit_conflict(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it does not raise ``CommitFailedError``, at most ``attempts`` times.

    ``fn`` must re-read everything it commits from, so a retry never commits a result computed
    from the snapshot that lost the race. Backoff doubles per attempt with full jitter so racing
    writers spread out; after the last attempt the original conflict is raised unchanged.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except CommitFailedError:
            if attempt == attempts:
                raise
            sleep(random.uniform(0, base_delay * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")  # pragma: no cover
