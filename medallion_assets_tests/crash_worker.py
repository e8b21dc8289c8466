"""Subprocess body for test_crash_safety: run one layer's work over a data folder so the parent
can SIGKILL it at a random moment. Usage: ``python crash_worker.py <layer> <data_dir>``.

Prints ``ready`` (flushed) after its imports and metadata loading, so the parent's kill delay
measures the work itself and not interpreter start-up; prints ``done`` at the end.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from medallion_assets.engine.base import load_base_tables, load_partition
from medallion_assets.engine.curated import load_curated_model, load_model
from medallion_assets.engine.landing.extract import describe_landing_file, extract_object
from medallion_assets.engine.landing.sources import DropFolderConnection, load_sources
from medallion_assets.engine.project import load_project_settings
from medallion_assets.engine.storage.paths import list_landing_files, resolve_data_dir

DAYS = 3


def sample_days() -> list[date]:
    start = load_project_settings().partitions.start_without_data
    return [start + timedelta(days=i) for i in range(DAYS)]


def _previous_watermark(data_dir: Path, source: str, obj, day: date, start: date) -> datetime | None:
    """The watermark the extract before ``day`` reached, read back from its landing files."""
    if not obj.watermark_column:
        return None
    while day > start:
        day -= timedelta(days=1)
        marks = []
        for landing in list_landing_files(data_dir, source, obj.name, partition_date=day):
            if landing.load_type == "keys":
                continue
            _, mark = describe_landing_file(landing, obj.watermark_column)
            if mark is not None:
                marks.append(mark)
        if marks:
            return max(marks)
    return None


def run_landing(data_dir: Path, day: date) -> None:
    start = load_project_settings().partitions.start_without_data
    for system in load_sources().values():
        if isinstance(system.connection, DropFolderConnection):
            continue  # drop folders are copied, never re-extracted
        for obj in system.included_objects():
            mark = _previous_watermark(data_dir, system.source, obj, day, start)
            extract_object(data_dir, system, obj, day, partition_start=start, previous_watermark=mark, force=True)


def run_base(data_dir: Path, days: list[date]) -> None:
    tables = load_base_tables()
    for day in days:
        for table in tables:
            load_partition(table, data_dir, day)


def run_curated(data_dir: Path) -> None:
    load_model(data_dir)


def main(argv: list[str]) -> int:
    layer, data_dir = argv[0], resolve_data_dir(argv[1])  # a local folder or an s3:// lake
    days = sample_days()
    # Warm the metadata caches before signalling, so the kill window covers real work.
    load_base_tables()
    load_curated_model()
    load_sources()
    print("ready", flush=True)
    if layer == "landing":
        run_landing(data_dir, days[-1])
    elif layer == "base":
        run_base(data_dir, days)
    elif layer == "base_but_last":
        run_base(data_dir, days[:-1])
    elif layer == "base_last":
        run_base(data_dir, days[-1:])
    elif layer == "curated":
        run_curated(data_dir)
    else:
        raise SystemExit(f"unknown layer {layer!r}")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    # Leave without interpreter teardown: the work is finished and flushed, and the native thread
    # pools of Arrow, DuckDB and delta-rs' runtime can abort (SIGABRT, "terminate called without
    # an active exception") when their static destructors race at exit. Dagster's step processes
    # end the same way (multiprocessing children leave through os._exit).
    os._exit(code)
