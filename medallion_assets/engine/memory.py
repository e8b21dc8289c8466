"""One memory budget and one spill folder for a run on one host, and the DuckDB connections that keep to them.

* ``MEDALLION_MEMORY_LIMIT`` (``3GB``, ``512MB``, ``2GiB``; or ``memory_limit`` in ``project.yaml``)
  is what every step running at once on this host may use together. Left unset it is half of the
  memory this process may use (the cgroup limit when there is one, else the machine's RAM).
* ``MEDALLION_TEMP_DIR`` is where DuckDB spills (one sub-folder per process); left unset it is
  ``_spill`` under the local working folder (the data root on local disk).
* ``MEDALLION_TEMP_LIMIT`` caps the spill folder's size per step (default: DuckDB's, 90% of the
  disk's free space).
* ``MEDALLION_STEPS_AT_ONCE`` is how many steps share the budget; the Dagster layer sets it in
  each step from the run's executor (``max_concurrent`` of the multiprocess executor, 1 in process).

A step's share is the budget divided by the steps at once; DuckDB gets three quarters of the
share (``memory_limit``), the rest is left for Python, Arrow batches in flight and the Delta
writer. Work beyond DuckDB's limit spills to the spill folder; when even that does not suffice,
:func:`within_budget` turns DuckDB's out-of-memory error into :class:`MemoryBudgetError`, which
names the table, the limit and the settings to change, and is never retried.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

MEMORY_LIMIT_ENV = "MEDALLION_MEMORY_LIMIT"
TEMP_DIR_ENV = "MEDALLION_TEMP_DIR"
STEPS_AT_ONCE_ENV = "MEDALLION_STEPS_AT_ONCE"
TEMP_LIMIT_ENV = "MEDALLION_TEMP_LIMIT"
DUCKDB_SHARE = 0.75
MEMORY_PER_THREAD = 256 * 10**6
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


class MemoryBudgetError(RuntimeError):
    """A step could not finish within its memory budget or spill space; the same on every attempt."""

    transient = False  # read by the Dagster layer's retry rule: never retried


def parse_size(text: str, *, where: str = MEMORY_LIMIT_ENV, least: int = 64 * 10**6) -> int:
    """``"3GB"`` -> 3_000_000_000 (decimal units; ``GiB`` etc. binary; a bare number is bytes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{where}={text!r}: not a size; write it like 3GB, 512MB or 2GiB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < least:
        raise ValueError(f"{where}={text!r}: at least {format_size(least)} is needed")
    return size


def format_size(size: int) -> str:
    return f"{size / 10**9:.1f}GB" if size >= 10**9 else f"{size / 10**6:.0f}MB"


def host_memory() -> int:
    """What this process may use: the cgroup v2 limit when set, else physical RAM."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max":
            return int(text)
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class MemoryBudget:
    """The run's budget on this host and this process's share of it."""

    limit: int  # bytes, for every step running at once
    origin: str  # where the limit came from: the variable, project.yaml or the default
    steps_at_once: int
    temp_dir: Path

    @property
    def share(self) -> int:
        return max(self.limit // self.steps_at_once, 64 * 10**6)

    @property
    def duckdb_limit(self) -> int:
        return int(self.share * DUCKDB_SHARE)

    @property
    def threads(self) -> int:
        """DuckDB's threads: each needs room of its own to sort and aggregate, so a small share runs fewer."""
        return max(1, min(os.cpu_count() or 1, 8, self.duckdb_limit // MEMORY_PER_THREAD))

    def describe(self) -> str:
        shared = (
            f", {format_size(self.share)} for this step of {self.steps_at_once} at once"
            if self.steps_at_once > 1
            else ""
        )
        return f"memory budget {format_size(self.limit)} ({self.origin}){shared}, spill folder {self.temp_dir}"


def _configured_limit() -> tuple[int, str]:
    value = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if value:
        return parse_size(value), MEMORY_LIMIT_ENV
    from medallion_assets.engine.project import load_project_settings

    try:
        configured = load_project_settings().memory_limit
    except Exception:  # no or a broken project.yaml: its own loader reports that where it matters
        configured = None
    if configured:
        return parse_size(configured, where="project.yaml memory_limit"), "project.yaml memory_limit"
    return host_memory() // 2, "default: half of this host's memory"


def _default_temp_dir() -> Path:
    from medallion_assets.engine.storage.lake import local_dir
    from medallion_assets.engine.storage.paths import resolve_data_dir

    return local_dir(resolve_data_dir()) / "_spill"


def current_budget() -> MemoryBudget:
    """The budget as the environment and ``project.yaml`` give it now (read at call time)."""
    limit, origin = _configured_limit()
    try:
        steps = max(int(os.environ.get(STEPS_AT_ONCE_ENV, "1")), 1)
    except ValueError:
        steps = 1
    temp = os.environ.get(TEMP_DIR_ENV, "").strip()
    return MemoryBudget(
        limit=limit,
        origin=origin,
        steps_at_once=steps,
        temp_dir=Path(temp).expanduser() if temp else _default_temp_dir(),
    )


def configure(con: duckdb.DuckDBPyConnection, budget: MemoryBudget | None = None, *, part: float = 1.0) -> MemoryBudget:
    """Hold a DuckDB database to the budget (``part`` of DuckDB's share, when the step runs two
    databases at once): its memory limit, its own spill folder, no progress bar."""
    budget = budget or current_budget()
    spill = budget.temp_dir / f"duckdb-{os.getpid()}"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = '{max(int(budget.duckdb_limit * part), 32 * 10**6)}B'")
    con.execute("SET temp_directory = ?", [str(spill)])
    temp_limit = os.environ.get(TEMP_LIMIT_ENV, "").strip()
    if temp_limit:
        con.execute(f"SET max_temp_directory_size = '{parse_size(temp_limit, where=TEMP_LIMIT_ENV, least=0)}B'")
    con.execute("SET enable_progress_bar = false")
    # Results that need an order say so (ORDER BY); without the promise, scans and writes stream
    # without buffering to keep rows in order.
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET threads = {budget.threads}")
    return budget


_shared: tuple[int, tuple, duckdb.DuckDBPyConnection] | None = None
_shared_lock = threading.Lock()


def _settings_key() -> tuple:
    return tuple(os.environ.get(name, "") for name in (MEMORY_LIMIT_ENV, TEMP_DIR_ENV, STEPS_AT_ONCE_ENV, TEMP_LIMIT_ENV))


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh DuckDB connection (own temp tables and registrations) on one in-memory database per
    process, held to the budget: opening a new database costs ~15 ms, a cursor on an open one well
    under 1 ms, and a load opens several. Temp tables spill to the spill folder past the limit."""
    global _shared
    key = _settings_key()
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid() or _shared[1] != key:  # a fork must not share the parent's
            db = duckdb.connect()
            configure(db)
            # Delta data files never change once written, so their Parquet footers can be cached.
            db.execute("SET GLOBAL parquet_metadata_cache = true")
            _shared = (os.getpid(), key, db)
        return _shared[2].cursor()


def new_database(*, part: float = 1.0) -> duckdb.DuckDBPyConnection:
    """A separate in-memory DuckDB database held to the budget (for code that sets its own options),
    or to ``part`` of it when the step runs another database beside it."""
    con = duckdb.connect()
    configure(con, part=part)
    return con


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError):
        return True
    text = str(exc)
    # A Delta writer reading DuckDB's stream reports DuckDB's error inside its own; delta-rs's
    # own memory pool (a merge) says "Resources exhausted".
    markers = ("Out of Memory Error", "No space left on device", "max_temp_directory_size", "Resources exhausted")
    return any(marker in text for marker in markers)


@contextmanager
def within_budget(what: str) -> Iterator[None]:
    """Turn running out of memory or spill space inside the block into :class:`MemoryBudgetError`
    naming ``what`` (e.g. ``table 'erp_order_line'``), the budget and the settings to change."""
    try:
        yield
    except MemoryBudgetError:
        raise
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
        budget = current_budget()
        detail = str(exc).strip().splitlines()[0][:300]
        raise MemoryBudgetError(
            f"{what}: could not finish within the {budget.describe()}: {detail}. "
            f"Raise {MEMORY_LIMIT_ENV} (or memory_limit in project.yaml), run fewer steps at once, "
            f"or give {TEMP_DIR_ENV} a folder with more free disk ({TEMP_LIMIT_ENV} caps it); no table was left half-written"
        ) from None


def budgeted(what: Callable[..., str]) -> Callable[[Callable], Callable]:
    """Run the decorated step :func:`within_budget`; ``what(*args, **kwargs)`` names what it loads."""

    def decorate(step: Callable) -> Callable:
        @functools.wraps(step)
        def run(*args, **kwargs):
            with within_budget(what(*args, **kwargs)):
                return step(*args, **kwargs)

        return run

    return decorate
