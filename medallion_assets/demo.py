"""`medallion demo`: the whole pipeline, every landing partition in date order, on a real instance."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg

from medallion_assets.engine.paths import LOAD_TYPES, repository_root
from medallion_assets.engine.sample import generate_sample, sample_exists


def landing_partitions(data_dir: Path) -> list[date]:
    """Every day that has at least one landing file, in date order."""
    landing = Path(data_dir) / "landing"
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


def demo_partitions(data_dir: Path) -> list[date]:
    """Every landed day, plus the sample source's current day when it has not been landed yet
    (after `medallion sample advance`; its extract then holds every change since the last one)."""
    from medallion_assets.engine.sample import sample_paths
    from medallion_assets.engine.sample.erp import current_source_day

    days = set(landing_partitions(data_dir))
    database = sample_paths(Path(data_dir)).database
    if database.is_file():
        days.add(current_source_day(database))
    return sorted(days)


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, else the checkout's persistent ``.dagster_home``."""
    home = os.environ.get("DAGSTER_HOME") or str(repository_root() / ".dagster_home")
    path = Path(home).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def run_demo(
    data_dir: Path,
    *,
    seed: int,
    days: int,
    customers: int,
    order_lines: int,
    log: Callable[[str], None] = print,
) -> list[tuple[str, dict[str, object]]]:
    from medallion_assets.definitions import defs

    started = time.perf_counter()
    if sample_exists(data_dir):
        log(f"sample found in {data_dir}; using it (remove {data_dir} to start over)")
    else:
        log(f"generating the sample in {data_dir}: {days} days, {customers:,} customers, {order_lines:,} order lines")
        generate_sample(data_dir, seed=seed, days=days, customers=customers, order_lines=order_lines, log=log)
    home = dagster_home()
    log(f"Dagster instance: {home}")
    job = defs.resolve_job_def("medallion_daily")
    partitions = demo_partitions(data_dir)
    with dg.DagsterInstance.get() as instance:
        for number, day in enumerate(partitions, start=1):
            t0 = time.perf_counter()
            result = job.execute_in_process(
                partition_key=day.isoformat(),
                instance=instance,
                raise_on_error=True,
                # Step-by-step Dagster logs go to the instance (and the UI); the terminal shows progress.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            materialized = result.get_asset_materialization_events()
            rows = sum(
                int(event.materialization.metadata["rows"].value)
                for event in materialized
                if "rows" in event.materialization.metadata
            )
            log(
                f"[{number}/{len(partitions)}] {day}: {len(materialized)} assets materialized, "
                f"{rows:,} rows, {time.perf_counter() - t0:.1f}s (run {result.run_id[:8]})"
            )
    summary = summarize(data_dir)
    log(format_summary(summary, data_dir))
    log(f"done in {time.perf_counter() - started:.1f}s")
    return summary


def summarize(data_dir: Path) -> list[tuple[str, dict[str, object]]]:
    """Row counts of every Delta table and file counts of every landing object."""
    from deltalake import DeltaTable

    rows: list[tuple[str, dict[str, object]]] = []
    landing = Path(data_dir) / "landing"
    for object_dir in sorted(p for p in landing.glob("*/*") if p.is_dir()):
        files = [f for f in object_dir.rglob("*") if f.is_file() and not f.name.startswith(".")]
        rows.append((f"landing.{object_dir.parent.name}_{object_dir.name}", {"files": len(files)}))
    for layer in ("base", "curated"):
        for table_dir in sorted(p for p in (Path(data_dir) / layer).glob("*") if (p / "_delta_log").is_dir()):
            table = DeltaTable(str(table_dir))
            count = table.to_pyarrow_dataset().count_rows()
            rows.append((f"{layer}.{table_dir.name}", {"rows": count, "version": table.version()}))
    return rows


def format_summary(summary: list[tuple[str, dict[str, object]]], data_dir: Path) -> str:
    lines = [f"\nSummary of {data_dir}:", f"  {'table':<40} {'files':>8} {'rows':>12} {'version':>8}"]
    for name, info in summary:
        lines.append(
            f"  {name:<40} {info.get('files', ''):>8} "
            f"{format(info['rows'], ',') if 'rows' in info else '':>12} {info.get('version', ''):>8}"
        )
    return "\n".join(lines)
