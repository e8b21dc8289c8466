"""Benchmark: the sample pipeline (landing, base, curated, serving) on local disk and on S3, in one run.

    .venv/bin/python benchmarks/object_storage.py --customers 2000 --order-lines 20000 --days 3

The S3 endpoint is moto's standalone server on localhost (``moto[server]``, the test extra), in a
process of its own: no network latency, but every object goes through HTTP and the S3 code path
(uploads, listings, downloads, delta-rs on ``s3://``). The local run, same data, same process,
is the peer. Both runs are checked equal (every table, load-time stamps aside). One process, no
worker pool: the figures compare storage, not parallelism.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medallion_assets.engine.base import load_base_tables, load_partition
from medallion_assets.engine.curated import load_curated_model, load_model
from medallion_assets.engine.serving import refresh_serving_views
from medallion_assets.engine.storage.lake import is_delta, open_delta
from medallion_assets.engine.storage.paths import resolve_data_dir
from medallion_assets.sample import generate_sample

STAMPS = {"lh_created_date", "lh_modified_date"}
SERVER = """
import sys, threading
from moto.server import ThreadedMotoServer
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
threading.Event().wait()
"""

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--customers", type=int, default=2_000)
parser.add_argument("--order-lines", type=int, default=20_000)
parser.add_argument("--days", type=int, default=3)
parser.add_argument("--seed", type=int, default=42)


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("moto server did not start")


def use_s3(endpoint: str, local_dir: Path) -> str:
    import boto3

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true", MEDALLION_LOCAL_DIR=str(local_dir),
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="medallion-bench")
    return "s3://medallion-bench/lake"


def run_pipeline(data_dir, args) -> list[tuple[str, float]]:
    timings = []
    started = time.perf_counter()
    days = generate_sample(
        data_dir, seed=args.seed, days=args.days, customers=args.customers, order_lines=args.order_lines, log=lambda m: None
    )
    timings.append(("sample + landing extracts", time.perf_counter() - started))
    started = time.perf_counter()
    tables = load_base_tables()
    for day in days:
        for table in tables:
            load_partition(table, data_dir, day)
    timings.append((f"base: {len(tables)} tables x {len(days)} days", time.perf_counter() - started))
    started = time.perf_counter()
    load_model(data_dir, load_curated_model())
    timings.append(("curated", time.perf_counter() - started))
    started = time.perf_counter()
    refresh_serving_views(data_dir)
    timings.append(("serving database", time.perf_counter() - started))
    return timings


def contents(data_dir) -> dict[str, list]:
    out = {}
    for layer in ("base", "base/_state", "curated"):
        folder = data_dir / layer
        for entry in sorted(folder.iterdir(), key=lambda p: p.name) if folder.is_dir() else []:
            if is_delta(entry):
                table = open_delta(entry).to_pyarrow_table()
                columns = sorted(c for c in table.column_names if c not in STAMPS)
                rows = zip(*[table.column(c).to_pylist() for c in columns], strict=True)
                out[f"{layer}/{entry.name}"] = sorted(rows, key=repr)
    return out


def main() -> None:
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medallion-bench-s3-"))
    local = work / "local"
    local.mkdir()
    local_timings = run_pipeline(local, args)
    server, endpoint = start_moto()
    try:
        remote = resolve_data_dir(use_s3(endpoint, work / "s3-local"))
        s3_timings = run_pipeline(remote, args)
        same = contents(local) == contents(remote)
    finally:
        server.terminate()
    print(f"\nmedallion-assets on S3 (moto, localhost) vs local disk: {args.customers:,} customers, "
          f"{args.order_lines:,} order lines, {args.days} days")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n{'step':<40} {'local s':>9} {'S3 s':>9} {'ratio':>7}")
    for (name, here), (_, there) in zip(local_timings, s3_timings, strict=True):
        print(f"{name:<40} {here:>9.1f} {there:>9.1f} {there / here:>7.2f}")
    total_local, total_s3 = sum(t for _, t in local_timings), sum(t for _, t in s3_timings)
    print(f"{'total':<40} {total_local:>9.1f} {total_s3:>9.1f} {total_s3 / total_local:>7.2f}")
    print(f"\nevery table equal on S3 and local disk: {same}")
    if not same:
        raise SystemExit("MISMATCH between the S3 lake and the local one")


if __name__ == "__main__":
    main()
