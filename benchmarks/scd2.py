"""Benchmark: the scd2 base engine on one big table, next to a floor measured in the same run.

    .venv/bin/python benchmarks/scd2.py                    # 1,000,000 rows: initial load, then a 1% change
    .venv/bin/python benchmarks/scd2.py --days 30          # growth: 30 daily full extracts, each a 1% change
    .venv/bin/python benchmarks/scd2.py --rows 100000      # smaller

Every load runs in a fresh Python process (``python benchmarks/scd2.py --load ...``), as a Dagster
step does, so three figures come out per load:

* engine s:  ``load_partition`` alone, timed inside the process;
* process s: interpreter start to exit, timed around the subprocess;
* cpu s:     the process's user + system CPU time, start to exit (``ru_utime + ru_stime``);
  on a shared machine it moves less than wall time, so ``cpu/fl`` (its ratio to the floor's)
  is printed beside ``/floor`` (the engine time's);
* peak RSS:  the process's maximum resident memory (``ru_maxrss``).

The floor is the least any engine must do with the same extract: read the Parquet file into Arrow
and write it as one new Delta table, in a fresh process too. A 1% change set is 0.5% of the rows
updated (a tracked attribute and the modify date change), 0.25% deleted (missing from the full
extract) and 0.25% inserted. ``--days D`` lands D daily full extracts, each a 1% change of the one
before, loads them day by day and prints per day the load time and the size (rows and bytes on
disk) of the base table and of its hidden state table ``base/_state/<table>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

START = date(2026, 1, 1)
SEGMENTS = np.array(["consumer", "corporate", "home_office", "small_business"])
CITIES = np.array([f"city_{i:03d}" for i in range(500)])


def table_meta():
    from medallion_assets.engine.base.model import BaseTable

    return BaseTable.model_validate(
        {
            "object": "customer",
            "source": "bench",
            "name": "bench_customer",
            "landing": [{"source": "bench", "object": "customer"}],
            "format": "parquet",
            "write_behaviour": "scd2",
            "business_keys": ["customer_id"],
            "modify_date_column": "modified_at",
        }
    )


class Source:
    """The source table as numpy columns; ``change`` applies one day's 1% change."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.next_id = rows + 1
        self.ids = np.arange(1, rows + 1, dtype=np.int64)
        self.segment = self.rng.integers(0, len(SEGMENTS), rows)
        self.city = self.rng.integers(0, len(CITIES), rows)
        self.credit = self.rng.integers(0, 100_000, rows).astype(np.int64)
        day0 = np.datetime64(datetime(2025, 1, 1), "us")
        self.modified = day0 + self.rng.integers(0, 365 * 86_400, rows) * np.timedelta64(1, "s")

    def change(self, day: date) -> None:
        n = len(self.ids)
        stamp = np.datetime64(datetime(day.year, day.month, day.day, 12), "us")
        picked = self.rng.permutation(n)
        updates, deletes = picked[: n // 200], picked[n // 200 : n // 200 + n // 400]
        self.city[updates] = (self.city[updates] + 1) % len(CITIES)
        self.modified[updates] = stamp
        keep = np.ones(n, dtype=bool)
        keep[deletes] = False
        inserts = n // 400
        new_ids = np.arange(self.next_id, self.next_id + inserts, dtype=np.int64)
        self.next_id += inserts
        self.ids = np.concatenate([self.ids[keep], new_ids])
        self.segment = np.concatenate([self.segment[keep], self.rng.integers(0, len(SEGMENTS), inserts)])
        self.city = np.concatenate([self.city[keep], self.rng.integers(0, len(CITIES), inserts)])
        self.credit = np.concatenate([self.credit[keep], self.rng.integers(0, 100_000, inserts).astype(np.int64)])
        self.modified = np.concatenate([self.modified[keep], np.full(inserts, stamp)])

    def table(self) -> pa.Table:
        return pa.table(
            {
                "customer_id": pa.array(self.ids),
                "name": pa.array(np.char.add("customer ", self.ids.astype(str))),
                "segment": pa.array(SEGMENTS[self.segment]),
                "city": pa.array(CITIES[self.city]),
                "credit_limit": pa.array(self.credit),
                "modified_at": pa.array(self.modified, pa.timestamp("us")),
            }
        )


def land(data_dir: Path, source: Source, day: date) -> Path:
    from medallion_assets.engine.storage.files import write_table_file
    from medallion_assets.engine.storage.paths import landing_file_path

    path = landing_file_path(
        data_dir, "bench", "customer", "full", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="parquet"
    )
    write_table_file(source.table(), path, "parquet")
    return path


# --- the measured child processes -----------------------------------------------------------


def child_load(data_dir: Path, day: date) -> dict:
    started = time.perf_counter()
    from medallion_assets.engine.base import load_partition

    imported = time.perf_counter()
    result = load_partition(table_meta(), data_dir, day)
    done = time.perf_counter()
    return {
        "import_s": imported - started,
        "engine_s": done - imported,
        "inserted": result.inserted,
        "updated": result.updated,
        "soft_deleted": result.soft_deleted,
    }


def child_floor(data_dir: Path, day: date, target: Path) -> dict:
    started = time.perf_counter()
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    from medallion_assets.engine.storage.paths import list_landing_files

    imported = time.perf_counter()
    (landing,) = list_landing_files(data_dir, "bench", "customer", partition_date=day)
    with pq.ParquetFile(landing.path) as parquet:  # the engine's own read of one file
        write_deltalake(str(target), parquet.read(), mode="overwrite")
    return {"import_s": imported - started, "engine_s": time.perf_counter() - imported}


def run_child(*args: str) -> dict:
    """Run this script as a child; returns its figures plus whole-process wall time and peak RSS."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["process_s"] = wall
    return figures


# --- sizes -----------------------------------------------------------------------------------


def delta_size(path: Path) -> tuple[int, int]:
    """(rows, bytes of the current version's data files) of a Delta table; (0, 0) when absent."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(path)):
        return 0, 0
    dt = DeltaTable(str(path))
    actions = pa.table(dt.get_add_actions(flatten=True))
    return int(sum(actions.column("num_records").to_pylist())), int(sum(actions.column("size_bytes").to_pylist()))


def line(name: str, f: dict, floor: dict | None = None) -> str:
    ratio = f" {f['engine_s'] / floor['engine_s']:>6.1f}x {f['cpu_s'] / floor['cpu_s']:>6.1f}x" if floor else ""
    return f"{name:<38} {f['engine_s']:>8.2f} {f['process_s']:>9.2f} {f['cpu_s']:>6.2f} {f['peak_rss_mb']:>9.0f}{ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=0, help="growth mode: land and load this many daily full extracts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a new temporary folder, removed at the end")
    parser.add_argument("--load", nargs=2, metavar=("DATA_DIR", "DAY"), help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=3, metavar=("DATA_DIR", "DAY", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.load or args.floor:
        if args.load:
            figures = child_load(Path(args.load[0]), date.fromisoformat(args.load[1]))
        else:
            figures = child_floor(Path(args.floor[0]), date.fromisoformat(args.floor[1]), Path(args.floor[2]))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        figures["peak_rss_mb"] = usage.ru_maxrss / 1024
        figures["cpu_s"] = usage.ru_utime + usage.ru_stime
        print(json.dumps(figures))
        return

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="medallion-scd2-"))
    try:
        run(args, data_dir)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, data_dir: Path) -> None:
    print(f"scd2 benchmark: {args.rows:,} rows, parquet full extracts; data in {data_dir}")
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.2f}")
    source = Source(args.rows, args.seed)
    meta = table_meta()
    base, state = data_dir / "base" / meta.name, data_dir / "base" / "_state" / meta.name
    floor_dir = data_dir / "floor"
    days = max(args.days, 2)
    header = f"\n{'load':<38} {'engine s':>8} {'process s':>9} {'cpu s':>6} {'RSS MB':>9} {'/floor':>7} {'cpu/fl':>7}"

    land(data_dir, source, START)
    floor = run_child("--floor", str(data_dir), START.isoformat(), str(floor_dir / "d1"))
    first = run_child("--load", str(data_dir), START.isoformat())
    figures = [(START, first, floor)]
    if args.days == 0:
        source.change(START + timedelta(days=1))
        day = START + timedelta(days=1)
        land(data_dir, source, day)
        figures.append(
            (
                day,
                run_child("--load", str(data_dir), day.isoformat()),
                run_child("--floor", str(data_dir), day.isoformat(), str(floor_dir / "d2")),
            )
        )
        print(header)
        print(
            f"{'floor: read extract + write one Delta':<38} {floor['engine_s']:>8.2f} "
            f"{floor['process_s']:>9.2f} {floor['cpu_s']:>6.2f} {floor['peak_rss_mb']:>9.0f}"
        )
        print(line(f"initial scd2 load of {args.rows:,} rows", first, floor))
        print(line("1% change (0.5% upd, 0.25% del, 0.25% ins)", figures[1][1], figures[1][2]))
        print(
            f"\ncounts of the change: inserted {figures[1][1]['inserted']:,}, "
            f"updated {figures[1][1]['updated']:,}, soft-deleted {figures[1][1]['soft_deleted']:,}"
        )
        return

    print(
        f"\n{'day':>4} {'engine s':>8} {'process s':>9} {'cpu s':>6} {'RSS MB':>7} {'floor s':>7} {'fl cpu':>6} {'base rows':>11} "
        f"{'base MB':>8} {'state rows':>11} {'state MB':>9} {'state +rows':>11}"
    )
    previous_state = 0
    for index in range(days):
        day = START + timedelta(days=index)
        if index:
            source.change(day)
            land(data_dir, source, day)
            load = run_child("--load", str(data_dir), day.isoformat())
            floor = run_child("--floor", str(data_dir), day.isoformat(), str(floor_dir / f"d{index % 2}"))
        else:
            load = first
        base_rows, base_bytes = delta_size(base)
        state_rows, state_bytes = delta_size(state)
        print(
            f"{index + 1:>4} {load['engine_s']:>8.2f} {load['process_s']:>9.2f} {load['cpu_s']:>6.2f} {load['peak_rss_mb']:>7.0f} "
            f"{floor['engine_s']:>7.2f} {floor['cpu_s']:>6.2f} "
            f"{base_rows:>11,} {base_bytes / 1e6:>8.1f} {state_rows:>11,} {state_bytes / 1e6:>9.1f} {state_rows - previous_state:>11,}",
            flush=True,
        )
        previous_state = state_rows


if __name__ == "__main__":
    main()
