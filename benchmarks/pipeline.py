"""Benchmark: the whole sample pipeline (landing, base, curated, serving) with the engine alone.

    .venv/bin/python benchmarks/pipeline.py --customers 100000 --order-lines 1000000 --days 30

Prints wall time and peak memory per layer, and checks the result: fact_sales has one row per
source order line and the same amount total. Peak memory is the largest total resident memory of
this process and its workers, sampled every 50 ms. Base tables of one day load in parallel in
``--workers`` processes, as the steps of the medallion_daily job do; days go in date order.
Dagster's own overhead per run is not included; the engine is what scales with the data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import duckdb
from deltalake import DeltaTable

import medallion_assets.sample as sample_module
from medallion_assets.engine.base import load_base_tables, load_partition
from medallion_assets.engine.curated import load_curated_model, load_model
from medallion_assets.engine.serving import refresh_serving_views
from medallion_assets.engine.storage.paths import list_landing_files


def tree_rss_mb() -> float:
    """Resident memory of this process and its children, in MB."""
    pids = [os.getpid()]
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@contextmanager
def layer(name: str, report: list):
    peak = [tree_rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], tree_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    report.append((name, elapsed, peak[0]))


def _load(table, data_dir: Path, day) -> None:
    load_partition(table, data_dir, day)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--order-lines", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--workers", type=int, default=2, help="processes loading one day's base tables (default 2)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="medallion-bench-"))
    report: list[tuple[str, float, float]] = []

    # Landing: generate runs the source simulation and, for every day, the landing extract code.
    extract_seconds = defaultdict(float)
    real_extract = sample_module.extract_object

    def timed_extract(*a, **k):
        t0 = time.perf_counter()
        try:
            return real_extract(*a, **k)
        finally:
            extract_seconds["landing"] += time.perf_counter() - t0

    sample_module.extract_object = timed_extract
    with layer("sample source simulation + landing extracts", report):
        days = sample_module.generate_sample(
            data_dir, seed=args.seed, days=args.days, customers=args.customers, order_lines=args.order_lines, log=lambda m: None
        )
    sample_module.extract_object = real_extract
    landing_files = sum(
        len(list_landing_files(data_dir, s, o))
        for s, o in [
            ("erp", "customer"),
            ("erp", "product"),
            ("erp", "employee"),
            ("erp", "sales_order_line"),
            ("finance", "budget"),
        ]
    )

    tables = load_base_tables()
    with layer(f"base: {len(tables)} tables x {len(days)} days, {args.workers} workers", report):
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for day in days:
                # The largest table first, so the others fill the second worker meanwhile.
                for future in [
                    pool.submit(_load, t, data_dir, day)
                    for t in sorted(tables, key=lambda t: t.name != "erp_sales_order_line")
                ]:
                    future.result()

    model = load_curated_model()
    with layer("curated: calendar, dimensions, facts, bridges", report):
        load_model(data_dir, model)

    with layer("serving: warehouse.duckdb views", report):
        refresh_serving_views(data_dir)

    # Check: one fact row per distinct source order line, same amount total.
    source = duckdb.connect(str(data_dir / "sources" / "erp.duckdb"), read_only=True)
    src_lines, src_amount = source.sql(
        "select count(*), sum(amount) from (select distinct * from sales_order_line)"
    ).fetchall()[0]
    source.close()
    fact = DeltaTable(str(data_dir / "curated" / "fact_sales")).to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("fact", fact)
    fact_lines, fact_amount = con.sql("select count(*), sum(amount) from fact").fetchall()[0]

    print(
        f"\nmedallion-assets pipeline benchmark: {args.customers:,} customers, {args.order_lines:,} order lines, {len(days)} days"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, data in {data_dir}"
    )
    print(f"\n{'step':<50} {'wall s':>8} {'peak RSS MB':>12}")
    for name, seconds, peak in report:
        print(f"{name:<50} {seconds:>8.1f} {peak:>12.0f}")
    print(f"{'  of which landing extracts (' + str(landing_files) + ' files)':<50} {extract_seconds['landing']:>8.1f}")
    pipeline = extract_seconds["landing"] + sum(s for n, s, _ in report[1:])
    print(
        f"{'end to end: landing + base + curated + serving':<50} {pipeline:>8.1f} {max(p for _, _, p in report):>12.0f}"
    )
    print(f"\nfact_sales rows {fact_lines:,} vs source order lines {src_lines:,}; amount {fact_amount} vs {src_amount}")
    if (fact_lines, fact_amount) != (src_lines, src_amount):
        raise SystemExit("MISMATCH between fact_sales and the source")


if __name__ == "__main__":
    main()
