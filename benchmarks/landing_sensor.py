"""Benchmark: one tick of the landing sensor's scan with 100,000 landing files already there.

    .venv/bin/python benchmarks/landing_sensor.py [--files 100000]

Lays out empty landing files (10 objects x 3 load types x N days), takes the first tick (which
remembers everything once), adds one new file and times the next ticks, which is what the
sensor does every 30 seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from medallion_assets.engine.landing.scan import scan_for_new_files
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import LOAD_TYPES, landing_file_path

OBJECTS = [f"object_{i:02d}" for i in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medallion-sensor-"))
    system = SourceSystem.model_validate(
        {
            "source": "erp",
            "connection": {"type": "duckdb", "database": "sources/erp.duckdb"},
            "objects": {name: {"extract_mode": "full", "format": "parquet"} for name in OBJECTS},
        }
    )
    days = args.files // (len(OBJECTS) * len(LOAD_TYPES))
    start = date(2000, 1, 1)
    t0 = time.perf_counter()
    for offset in range(days):
        day = start + timedelta(days=offset)
        for name in OBJECTS:
            for load_type in LOAD_TYPES:
                path = landing_file_path(
                    root, "erp", name, load_type, day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="parquet"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    files = days * len(OBJECTS) * len(LOAD_TYPES)
    print(f"laid out {files:,} landing files over {days:,} days in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    _, cursor = scan_for_new_files(root, {"erp": system}, None)
    print(f"first tick (no cursor: reads the newest days only): {time.perf_counter() - t0:.2f}s")

    timings = []
    for i in range(5):
        day = start + timedelta(days=days + i)
        new = landing_file_path(
            root, "erp", OBJECTS[0], "delta", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="parquet"
        )
        new.parent.mkdir(parents=True, exist_ok=True)
        new.touch()
        t0 = time.perf_counter()
        found, cursor = scan_for_new_files(root, {"erp": system}, cursor)
        timings.append(time.perf_counter() - t0)
        assert [f.path for f in found] == [new], found
    print(f"next ticks with one new file each: median {statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
