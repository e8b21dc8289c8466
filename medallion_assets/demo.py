"""`medallion run` and `medallion demo`: every layer for each day in date order, on a real instance."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_remote, local_dir, open_delta
from medallion_assets.engine.storage.paths import LOAD_TYPES, repository_root
from medallion_assets.sample import default_sample_start, generate_sample, sample_exists

if TYPE_CHECKING:
    from medallion_assets.orchestration.launch import FinishedRun


def landing_partitions(data_dir: LakeRoot) -> list[date]:
    """Every day that has at least one landing file, in date order."""
    landing = as_path(data_dir) / "landing"
    days: set[date] = set()
    if landing.is_dir():
        for load_type in LOAD_TYPES:
            for day_dir in landing.glob(f"*/*/{load_type}/*/*/*"):
                if day_dir.is_dir() and any(not p.name.startswith(".") for p in day_dir.iterdir()):
                    try:
                        days.add(date(int(day_dir.parent.parent.name), int(day_dir.parent.name), int(day_dir.name)))
                    except ValueError:
                        continue
    return sorted(days)


def demo_partitions(data_dir: LakeRoot) -> list[date]:
    """Every landed day, plus the sample source's current day when it has not been landed yet
    (after `medallion sample advance`; its extract then holds every change since the last one)."""
    from medallion_assets.sample import sample_paths
    from medallion_assets.sample.erp import current_source_day

    days = set(landing_partitions(data_dir))
    database = sample_paths(as_path(data_dir)).database
    if database.is_file():
        days.add(current_source_day(database))
    return sorted(days)


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, else the checkout's persistent ``.dagster_home``."""
    home = os.environ.get("DAGSTER_HOME") or str(repository_root() / ".dagster_home")
    path = Path(home).resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():  # the defaults (SQLite under the folder), said once instead of warned each time
        config.write_text("# The embedded default instance: runs, events and schedules in SQLite in this folder.\n")
    os.environ["DAGSTER_HOME"] = str(path)
    return path


@dataclass(frozen=True)
class DayRun:
    day: date
    run_id: str
    success: bool
    materialized: int
    rows: int
    seconds: float
    failed_steps: tuple[str, ...] = ()


def run_days(days: list[date], *, log: Callable[[str], None] = print) -> list[DayRun]:
    """``medallion_daily`` for each day in date order, launched as the daemon launches runs: a
    run of the code location on the instance at ``$DAGSTER_HOME``, executed by its run launcher,
    whose steps run in their own processes, the dimensions in parallel. Stops at the first failed
    day (later days build on it)."""
    from medallion_assets.orchestration.jobs import _parallel
    from medallion_assets.orchestration.launch import code_location_launcher

    home = dagster_home()
    output = home / "logs" / f"medallion-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log(f"Dagster instance: {home}")
    log(f"step output: {output}")
    # Step-by-step Dagster logs go to the instance (and the UI); the terminal shows progress.
    run_config = {**_parallel(), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    runs: list[DayRun] = []
    with dg.DagsterInstance.get() as instance, code_location_launcher(instance, output=output) as launch:
        for number, day in enumerate(days, start=1):
            t0 = time.perf_counter()
            finished = launch("medallion_daily", run_config=run_config, tags={"dagster/partition": day.isoformat()})
            run = _day_run(day, finished, seconds=time.perf_counter() - t0)
            runs.append(run)
            status = "" if run.success else f", FAILED at {', '.join(run.failed_steps) or 'run level'}"
            log(
                f"[{number}/{len(days)}] {day}: {run.materialized} assets materialized, "
                f"{run.rows:,} rows, {run.seconds:.1f}s (run {run.run_id[:8]}){status}"
            )
            for asset, rows in _quarantined(finished):
                log(f"  warning: {asset}: {rows:,} rows kept aside in quarantine (base/_quarantine)")
            if not run.success:
                for step, message in finished.step_errors:
                    log(f"  {step.replace('__', '/')}: {message}")
                log(f"stopped: see run {run.run_id} in the UI (scripts/ui) for the whole error")
                break
    return runs


def _quarantined(finished: FinishedRun) -> list[tuple[str, int]]:
    """Each table of the run that kept rows aside in quarantine, and how many."""
    out = []
    for materialization in finished.materializations:
        value = materialization.metadata.get("quarantined")
        if value is not None and value.value:
            out.append((materialization.asset_key.to_user_string(), int(value.value)))
    return out


def _day_run(day: date, finished: FinishedRun, *, seconds: float) -> DayRun:
    # landing reports the rows it extracted, base and curated the rows they read
    rows = sum(
        int(metadata[name].value)
        for metadata in (m.metadata for m in finished.materializations)
        for name in ("rows", "rows_read")
        if name in metadata
    )
    return DayRun(
        day=day, run_id=finished.run_id, success=finished.success, materialized=len(finished.materializations),
        rows=rows, seconds=seconds, failed_steps=finished.failed_steps,
    )


def run_range(data_dir: LakeRoot, *, first: date, last: date, log: Callable[[str], None] = print) -> list[DayRun]:
    """`medallion run`: every layer for each day ``first``..``last``, then the summary."""
    started = time.perf_counter()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    runs = run_days(days, log=log)
    _report(data_dir, started=started, log=log)
    return runs


def run_demo(
    data_dir: LakeRoot,
    *,
    seed: int,
    days: int,
    customers: int,
    order_lines: int,
    start_date: date | None = None,
    log: Callable[[str], None] = print,
) -> list[DayRun]:
    """Generate the sample if absent (its window ends yesterday by default), then `run` every landed day."""
    started = time.perf_counter()
    if is_remote(data_dir):
        log(f"local working folder of {data_dir} (sample source, locks, spill): {local_dir(data_dir)}")
    if sample_exists(data_dir):
        log(f"sample found in {data_dir}; using it (remove {data_dir} to start over)")
    else:
        start_date = start_date or default_sample_start(days)
        log(
            f"generating the sample in {data_dir}: {days} days from {start_date}, "
            f"{customers:,} customers, {order_lines:,} order lines"
        )
        generate_sample(
            data_dir, seed=seed, days=days, customers=customers, order_lines=order_lines, start_date=start_date, log=log
        )
    runs = run_days(demo_partitions(data_dir), log=log)
    _report(data_dir, started=started, log=log)
    return runs


def _report(data_dir: LakeRoot, *, started: float, log: Callable[[str], None]) -> None:
    # Delta tables are opened only here, after every run: step processes never inherit them.
    log(format_summary(summarize(data_dir), data_dir))
    log(f"done in {time.perf_counter() - started:.1f}s")


def summarize(data_dir: LakeRoot) -> list[tuple[str, dict[str, object]]]:
    """Row counts of every Delta table and file counts of every landing object."""

    rows: list[tuple[str, dict[str, object]]] = []
    landing = as_path(data_dir) / "landing"
    for object_dir in sorted(p for p in landing.glob("*/*") if p.is_dir()):
        files = [f for f in object_dir.rglob("*") if f.is_file() and not f.name.startswith(".")]
        rows.append((f"landing.{object_dir.parent.name}_{object_dir.name}", {"files": len(files)}))
    for layer in ("base", "curated"):
        for table_dir in sorted(p for p in (as_path(data_dir) / layer).glob("*") if (p / "_delta_log").is_dir()):
            table = open_delta(table_dir)
            count = table.to_pyarrow_dataset().count_rows()
            rows.append((f"{layer}.{table_dir.name}", {"rows": count, "version": table.version()}))
    return rows


def format_summary(summary: list[tuple[str, dict[str, object]]], data_dir: LakeRoot) -> str:
    lines = [f"\nSummary of {data_dir}:", f"  {'table':<40} {'files':>8} {'rows':>12} {'version':>8}"]
    for name, info in summary:
        lines.append(
            f"  {name:<40} {info.get('files', ''):>8} "
            f"{format(info['rows'], ',') if 'rows' in info else '':>12} {info.get('version', ''):>8}"
        )
    return "\n".join(lines)
