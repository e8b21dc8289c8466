"""Benchmark: a PostgreSQL table to a landing Parquet file, full and incremental, next to the floor.

    .venv/bin/python benchmarks/extract.py --rows 1000000 5000000

For each size it builds a table of a dozen mixed-type columns server-side (``generate_series``)
in a fresh ``medallion_h9_bench_<random>`` database on 127.0.0.1:5432, then measures, each in
its own child process (wall time of the work, and the child's peak resident memory):

- ``landing full``: ``extract_object`` of the whole table, as the landing asset runs it;
- ``floor full``: the fastest plain read of the same table into Parquet with the same library:
  ADBC's record batch stream written by ``pyarrow.parquet.ParquetWriter``, nothing else;
- then 1 % of the rows get a new ``modified_at``, and ``landing delta`` (an incremental extract
  by watermark) runs next to ``floor delta`` (the same filtered SELECT into Parquet).

Each kind runs ``--repeat`` times (default 3), interleaved with its floor so that a change of
load on the machine (or a cold cache on the first read of a new table) hits both alike, and the
median run is printed.

The database is dropped at the end. Set ``BENCH_PG_ADMIN`` for another server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path

ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
WATERMARK = datetime(2026, 1, 1, 12)

TABLE_SQL = """
CREATE TABLE bench AS
SELECT g::bigint AS id,
       (g % 100000)::integer AS customer_id,
       (g % 7)::smallint AS quantity,
       round((random() * 10000)::numeric, 2)::numeric(12,2) AS amount,
       random() AS ratio,
       'customer ' || (g % 100000) AS label,
       md5(g::text) AS note,
       (g % 2 = 0) AS flag,
       date '2025-01-01' + (g % 365)::integer AS order_date,
       timestamp '2025-01-01' + g * interval '1 second' AS created_at,
       timestamp '2026-01-01 00:00' + (g % 36000) * interval '1 second' AS modified_at,
       timestamptz '2025-06-01 00:00+00' + g * interval '1 millisecond' AS shipped_at
FROM generate_series(1, {rows}) AS g
"""


def child(kind: str, url: str, out: str) -> None:
    """One measurement, in this (fresh) process; prints a JSON line."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    from medallion_assets.engine.landing.extract import extract_object
    from medallion_assets.engine.landing.sources import SourceSystem

    started = time.perf_counter()  # the work only, imports done
    if kind.startswith("landing"):
        system = SourceSystem.model_validate(
            {
                "source": "bench",
                "connection": {"type": "sql_database", "url_env": "BENCH_DATABASE_URL"},
                "objects": {
                    "bench": {"extract_mode": "incremental", "watermark_column": "modified_at", "primary_key": ["id"], "format": "parquet"}
                },
            }
        )
        previous = WATERMARK if kind == "landing delta" else None
        day = date(2026, 1, 2) if previous else date(2026, 1, 1)
        result = extract_object(
            Path(out), system, system.objects["bench"], day, partition_start=date(2026, 1, 1),
            previous_watermark=previous, database_url=url,
        )
        rows = result.rows_read
    else:
        sql = "SELECT * FROM bench" + (" WHERE modified_at > $1" if kind == "floor delta" else "")
        params = (WATERMARK,) if kind == "floor delta" else None
        rows = 0
        with adbc.connect(url) as con, con.cursor() as cursor:
            cursor.execute(sql, parameters=params)
            reader = cursor.fetch_record_batch()
            with pq.ParquetWriter(Path(out) / "floor.parquet", reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "rows": rows, "wall": wall, "peak_mb": peak_mb}))


def measure(kind: str, url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="medallion-bench-") as out:
        done = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--url", url, "--out", out],
            check=True, capture_output=True, text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(kinds: list[str], url: str, *, repeat: int) -> list[dict]:
    """Each kind ``repeat`` times, interleaved (so load changes hit both alike); the median run."""
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind in kinds:
            runs[kind].append(measure(kind, url))
    return [sorted(runs[kind], key=lambda r: r["wall"])[len(runs[kind]) // 2] for kind in kinds]


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(sql)


def run_size(rows: int, *, repeat: int) -> list[dict]:
    import psycopg

    name = f"medallion_h9_bench_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(TABLE_SQL.format(rows=rows))
            con.execute("ALTER TABLE bench ADD PRIMARY KEY (id)")
            con.execute("CREATE INDEX ON bench (modified_at)")
            con.execute("VACUUM ANALYZE bench")
        print(f"  table of {rows:,} rows built in {time.perf_counter() - t0:.1f}s", flush=True)
        results = median_of(["floor full", "landing full"], url, repeat=repeat)
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("UPDATE bench SET modified_at = timestamp '2026-01-02 08:00' WHERE id % 100 = 0")
            con.execute("VACUUM ANALYZE bench")
        results += median_of(["floor delta", "landing delta"], url, repeat=repeat)
        return results
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per kind, interleaved with the floor: the median is printed"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.out)
        return
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    print(f"{'rows':>10} {'run':<14} {'rows landed':>12} {'wall s':>8} {'vs floor':>9} {'peak MB':>8}")
    for rows in args.rows:
        print(f"{rows:,} rows:", flush=True)
        results = run_size(rows, repeat=args.repeat)
        floors = {r["kind"].split()[1]: r for r in results if r["kind"].startswith("floor")}
        for r in results:
            ratio = r["wall"] / floors[r["kind"].split()[1]]["wall"]
            print(f"{rows:>10,} {r['kind']:<14} {r['rows']:>12,} {r['wall']:>8.2f} {ratio:>8.2f}x {r['peak_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
