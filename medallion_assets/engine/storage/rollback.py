"""Undo the Delta commits one run made, by time window, with Delta's own ``restore``.

A run's commits are the ones whose commit timestamp falls inside the run's [start, end]. Each
table the run wrote is restored to the version it had just before its first such commit; a
restore is itself a new commit, so nothing is deleted and the undo can be undone by time travel.

Tables considered: every table of ``list_delta_tables`` (``base/<t>``, ``curated/<t>``) plus the
base engine's companions ``base/_state/<t>`` (order-independent observations) and
``base/_quarantine/<t>``, which must move back together with their base table or the next load
would compare against the undone run's state.

Limitations, by design of a time-window undo:

* a concurrent run that wrote the same table inside the window is undone too;
* a table the run created (its first version lies in the window, which includes tables a
  ``recreate`` load rebuilds from scratch) had no "before": it is reported as
  ``created_by_run`` and left as it is, never deleted;
* commits made after the run are undone as well; :func:`execute_rollback` refuses such tables
  unless ``undo_later_commits`` is set;
* a version whose files were vacuumed cannot be restored; that table reports an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from deltalake import DeltaTable

from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_delta, open_delta
from medallion_assets.engine.storage.paths import list_delta_tables

COMPANION_FOLDERS = ("_state", "_quarantine")

Action = Literal["restore", "already_restored", "created_by_run"]


@dataclass(frozen=True)
class RollbackStep:
    """What undoing the window means for one table the run wrote."""

    layer: str  # "base", "curated", "base/_state" or "base/_quarantine"
    table: str
    path: Path
    action: Action
    run_versions: tuple[int, ...]  # versions committed inside the window
    current_version: int
    version_before: int | None  # None when the run created the table
    later_commits: int  # commits after the run that a restore would undo too

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.table}"

    @property
    def commits_undone(self) -> int:
        return len(self.run_versions) + self.later_commits if self.action == "restore" else 0


@dataclass(frozen=True)
class TableRollback:
    """The outcome for one table: restored (``version_after`` set), skipped, or failed."""

    plan: RollbackStep
    restored: bool
    version_after: int | None = None
    error: str | None = None
    metrics: dict = field(default_factory=dict)


def _epoch_ms(moment: datetime) -> float:
    """Milliseconds since the epoch; naive datetimes are UTC (the project's convention)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000.0


def candidate_tables(data_dir: LakeRoot) -> list[tuple[str, str, Path]]:
    """(layer, table, path) of every table a run may write: base, curated, and base companions."""
    found = list_delta_tables(as_path(data_dir))
    companions = []
    for layer, table, _ in found:
        if layer != "base":
            continue
        for folder in COMPANION_FOLDERS:
            path = as_path(data_dir) / "base" / folder / table
            if is_delta(path):
                companions.append((f"base/{folder}", table, path.resolve()))
    return found + companions


def _file_set(dt: DeltaTable) -> tuple[frozenset[str], str]:
    return frozenset(dt.file_uris()), dt.schema().to_json()


def plan_table(layer: str, table: str, path: Path, start: datetime, end: datetime) -> RollbackStep | None:
    """The plan for one table, or ``None`` when no commit of it lies inside [start, end]."""
    start_ms, end_ms = math.floor(_epoch_ms(start)), math.ceil(_epoch_ms(end))
    dt = open_delta(path)
    history = sorted(dt.history(), key=lambda entry: entry["version"])
    in_window = tuple(e["version"] for e in history if start_ms <= e["timestamp"] <= end_ms)
    if not in_window:
        return None
    current = dt.version()
    later = sum(1 for e in history if e["version"] > max(in_window))
    base = dict(layer=layer, table=table, path=as_path(path), run_versions=in_window, current_version=current)
    if min(in_window) == 0:
        return RollbackStep(**base, action="created_by_run", version_before=None, later_commits=later)
    before = min(in_window) - 1
    # A previous rollback (or any later commit) may already have brought the table back.
    if _file_set(dt) == _file_set(open_delta(path, version=before)):
        return RollbackStep(**base, action="already_restored", version_before=before, later_commits=0)
    return RollbackStep(**base, action="restore", version_before=before, later_commits=later)


def plan_rollback(data_dir: LakeRoot, start: datetime, end: datetime) -> list[RollbackStep]:
    """One plan per table with commits inside [start, end]; every other table is left out."""
    if end < start:
        raise ValueError(f"rollback window ends ({end}) before it starts ({start})")
    plans = []
    for layer, table, path in candidate_tables(data_dir):
        plan = plan_table(layer, table, path, start, end)
        if plan is not None:
            plans.append(plan)
    return plans


def blocked_by_later_commits(plans: list[RollbackStep]) -> list[RollbackStep]:
    """Tables whose restore would also undo commits made after the run."""
    return [p for p in plans if p.action == "restore" and p.later_commits > 0]


def execute_rollback(plans: list[RollbackStep], *, undo_later_commits: bool = False) -> list[TableRollback]:
    """Restore every ``restore`` plan; one table's failure does not stop the others.

    Refuses up front (``ValueError``, nothing restored) when a table has commits after the run,
    unless ``undo_later_commits`` is set.
    """
    blocked = blocked_by_later_commits(plans)
    if blocked and not undo_later_commits:
        names = ", ".join(f"{p.name} ({p.later_commits})" for p in blocked)
        raise ValueError(f"tables were written after the run; restoring would undo those commits too: {names}")
    results = []
    for plan in plans:
        if plan.action != "restore":
            results.append(TableRollback(plan=plan, restored=False))
            continue
        try:
            dt = open_delta(plan.path)
            if dt.version() != plan.current_version:
                raise RuntimeError(f"table moved from version {plan.current_version} to {dt.version()} since planning")
            metrics = dt.restore(plan.version_before)
            version_after = open_delta(plan.path).version()
        except Exception as error:  # noqa: BLE001 - reported per table, the others still restore
            results.append(TableRollback(plan=plan, restored=False, error=f"{type(error).__name__}: {error}"))
            continue
        results.append(TableRollback(plan=plan, restored=True, version_after=version_after, metrics=dict(metrics or {})))
    return results
