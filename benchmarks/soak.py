"""Soak run: many consecutive daily cycles of the sample through the real medallion_daily job.

    .venv/bin/python benchmarks/soak.py --cycles 30 --days 7 --customers 10000 --order-lines 100000

Generates the sample (in a temp folder unless ``--data-dir``), loads every generated day, then
``--cycles`` times moves the source forward one day (`medallion sample advance`) and runs
medallion_daily for it. One line per cycle: wall time (advance + job) and order-line counts.

At the end it checks what a long run must not break: every ERP base table's current, non-deleted
rows equal the source table (both ways, on the source columns) and every SCD2 invariant holds. It
reports the Delta file counts before and after compact + vacuum, and whether cycle time grows
faster than the data does (first-5 vs last-5 mean, slope of seconds against order lines).
Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
from deltalake import DeltaTable

RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=30, help="daily cycles after the initial load")
    parser.add_argument("--days", type=int, default=7, help="days of history the sample starts with")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--order-lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, help="empty folder to use (default: a temp folder)")
    return parser.parse_args()


def run_day(job, instance, day: date) -> None:
    job.execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=True, run_config=RUN_CONFIG)


def order_line_counts(data_dir: Path) -> tuple[int, int]:
    """(rows in base.erp_sales_order_line, of which current and not deleted)."""
    dataset = DeltaTable(str(data_dir / "base" / "erp_sales_order_line")).to_pyarrow_dataset()
    con = duckdb.connect()
    try:
        con.register("t", dataset)
        total, live = con.execute("SELECT count(*), count(*) FILTER (WHERE NOT lh_is_deleted) FROM t").fetchall()[0]
    finally:
        con.close()
    return int(total), int(live)


def quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected column name {name!r}")
    return f'"{name}"'


def compare_with_source(data_dir: Path, database: Path) -> list[str]:
    """Failures (empty when sound): current rows vs the source, and SCD2 invariants."""
    from medallion_assets.engine.base import load_base_tables
    from medallion_assets.engine.base.invariants import scd2_violations

    failures: list[str] = []
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{database}' AS src (READ_ONLY)").fetchall()
        for table in load_base_tables():
            if table.source != "erp" or not table.include:
                continue
            dataset = DeltaTable(str(data_dir / "base" / table.name)).to_pyarrow_dataset()
            con.register("b", dataset)
            source_columns = [r[0] for r in con.execute(f"DESCRIBE src.main.{quote(table.object)}").fetchall()]
            renamed = [table.translations.get(c, c) for c in source_columns]
            base_columns = set(dataset.schema.names)
            keep = [(s, b) for s, b in zip(source_columns, renamed, strict=True) if b in base_columns]
            src_cols = ", ".join(quote(s) for s, _ in keep)
            base_cols = ", ".join(quote(b) for _, b in keep)
            current = "lh_is_current AND NOT lh_is_deleted" if table.write_behaviour == "scd2" else "NOT lh_is_deleted"
            con.execute(f"CREATE OR REPLACE TEMP VIEW cur AS SELECT DISTINCT {base_cols} FROM b WHERE {current}").fetchall()
            con.execute(f"CREATE OR REPLACE TEMP VIEW srcv AS SELECT DISTINCT {src_cols} FROM src.main.{quote(table.object)}").fetchall()
            only_base = con.execute("SELECT count(*) FROM (SELECT * FROM cur EXCEPT SELECT * FROM srcv)").fetchall()[0][0]
            only_src = con.execute("SELECT count(*) FROM (SELECT * FROM srcv EXCEPT SELECT * FROM cur)").fetchall()[0][0]
            n_base = con.execute("SELECT count(*) FROM cur").fetchall()[0][0]
            n_src = con.execute("SELECT count(*) FROM srcv").fetchall()[0][0]
            status = "ok" if only_base == only_src == 0 else "FAIL"
            print(
                f"  {table.name:<24} {table.write_behaviour}: current {n_base:>9,}  source {n_src:>9,}  "
                f"only in base {only_base:,}  only in source {only_src:,}  [{status}]"
            )
            if status != "ok":
                failures.append(f"{table.name}: {only_base} rows only in base, {only_src} only in source")
            if len(keep) != len(source_columns):
                missing = sorted(set(renamed) - base_columns)
                print(f"    (not compared, absent from base: {', '.join(missing)})")
            if table.write_behaviour == "scd2":
                violations = scd2_violations(dataset, table.business_keys)
                bad = {k: v for k, v in violations.items() if v}
                print(f"    scd2 invariants: {'all zero' if not bad else bad}")
                if bad:
                    failures.append(f"{table.name}: SCD2 violations {bad}")
            con.unregister("b")
    finally:
        con.close()
    return failures


def maintain_all(data_dir: Path) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Compact + vacuum (retention 0) every Delta table; totals (active files, bytes, disk files, bytes) before/after."""
    from medallion_assets.engine.storage.maintenance import file_stats, maintain_table
    from medallion_assets.engine.storage.paths import list_delta_tables

    before = [0, 0, 0, 0]
    after = [0, 0, 0, 0]
    for layer, name, path in list_delta_tables(data_dir):
        b = file_stats(path)
        maintain_table(path, retention_days=0)
        a = file_stats(path)
        for totals, stats in ((before, b), (after, a)):
            totals[0] += stats.active_files
            totals[1] += stats.active_bytes
            totals[2] += stats.disk_files
            totals[3] += stats.disk_bytes
        print(
            f"  {layer + '.' + name:<34} files on disk {b.disk_files:>5} -> {a.disk_files:>4}   "
            f"active {b.active_files:>4} -> {a.active_files:>3}"
        )
    return tuple(before), tuple(after)  # type: ignore[return-value]


def main() -> int:
    args = parse_args()
    if args.data_dir:
        data_dir = args.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="medallion-soak-"))
    # The definitions resolve the data root when built: set it before importing them.
    os.environ["MEDALLION_DATA_DIR"] = str(data_dir)
    import dagster as dg

    from medallion_assets.definitions import defs
    from medallion_assets.demo import demo_partitions
    from medallion_assets.sample import advance_sample, generate_sample, sample_paths

    quiet = lambda _message: None  # noqa: E731
    print(f"data dir {data_dir}")
    t0 = time.perf_counter()
    generate_sample(
        data_dir, seed=args.seed, days=args.days, customers=args.customers, order_lines=args.order_lines, log=quiet
    )
    print(
        f"sample generated: {args.days} days, {args.customers:,} customers, {args.order_lines:,} order lines "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    job = defs.resolve_job_def("medallion_daily")
    seconds: list[float] = []
    lines: list[int] = []
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        initial = demo_partitions(data_dir)
        for day in initial:
            run_day(job, instance, day)
        total, live = order_line_counts(data_dir)
        print(
            f"initial load of {len(initial)} days ({initial[0]}..{initial[-1]}) in {time.perf_counter() - t0:.1f}s; "
            f"order lines {live:,} live / {total:,} rows"
        )
        print(f"{'cycle':>5} {'day':>10} {'seconds':>8} {'advance':>8} {'job':>7} {'live lines':>11} {'rows':>9}")
        for cycle in range(1, args.cycles + 1):
            t0 = time.perf_counter()
            new_days = advance_sample(data_dir, days=1, log=quiet)
            t1 = time.perf_counter()
            for day in new_days:
                run_day(job, instance, day)
            t2 = time.perf_counter()
            total, live = order_line_counts(data_dir)
            seconds.append(t2 - t0)
            lines.append(live)
            print(
                f"{cycle:>5} {new_days[-1].isoformat():>10} {t2 - t0:>8.1f} {t1 - t0:>8.1f} {t2 - t1:>7.1f} "
                f"{live:>11,} {total:>9,}",
                flush=True,
            )

    print("\nchecks: current base rows vs source, SCD2 invariants")
    failures = compare_with_source(data_dir, sample_paths(data_dir).database)
    print("\nmaintenance (compact + vacuum, retention 0)")
    before, after = maintain_all(data_dir)

    print("\nsummary")
    if seconds:
        k = min(5, len(seconds))
        print(
            f"  cycle time: first {k} mean {statistics.mean(seconds[:k]):.2f}s, last {k} mean "
            f"{statistics.mean(seconds[-k:]):.2f}s (min {min(seconds):.2f}s, max {max(seconds):.2f}s)"
        )
        print(f"  order lines: {lines[0]:,} after cycle 1 -> {lines[-1]:,} after cycle {len(lines)}")
        if len(set(lines)) > 1:
            fit = statistics.linear_regression(lines, seconds)
            per_cycle = statistics.linear_regression(range(len(seconds)), seconds)
            print(
                f"  slope: {fit.slope * 1000:.4f}s per 1,000 order lines "
                f"(intercept {fit.intercept:.2f}s); {per_cycle.slope:.3f}s per cycle"
            )
    print(
        f"  Delta files on disk {before[2]:,} ({before[3] / 1e6:.1f} MB) -> {after[2]:,} ({after[3] / 1e6:.1f} MB); "
        f"active {before[0]:,} -> {after[0]:,}"
    )
    if failures:
        print("  FAIL")
        for failure in failures:
            print(f"    {failure}")
        return 1
    print("  PASS: every ERP base table equals its source; SCD2 invariants hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
