"""Loads under a memory budget: a tiny budget spills and gives the same tables as no budget, for
every write behaviour; a budget that cannot suffice fails clearly and writes nothing; and a load
in its own process stays far below the size of the table it loads (nothing holds it whole)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base import load_partition
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.memory import (
    MEMORY_LIMIT_ENV,
    TEMP_DIR_ENV,
    TEMP_LIMIT_ENV,
    MemoryBudgetError,
    current_budget,
    parse_size,
)
from medallion_assets.engine.storage.paths import landing_file_path

DAY1, DAY2 = date(2026, 1, 1), date(2026, 1, 2)


def _table(write_behaviour: str) -> BaseTable:
    return BaseTable.model_validate(
        {
            "object": "line",
            "source": "erp",
            "name": "erp_line",
            "landing": [{"source": "erp", "object": "line"}],
            "format": "parquet",
            "write_behaviour": write_behaviour,
            "business_keys": ["line_id"] if write_behaviour in ("scd1", "scd2") else [],
            "modify_date_column": "modified_at" if write_behaviour in ("scd1", "scd2") else None,
        }
    )


def _land(root: Path, day: date, rows: int, *, changed_every: int = 0, text_bytes: int = 60) -> Path:
    """A full extract of ``rows`` lines written by DuckDB (never in Python): day 2 changes every
    ``changed_every``-th line, drops every 400th and adds a few new ones."""
    path = landing_file_path(root, "erp", "line", "full", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    changed = f"i % {changed_every} = 0" if changed_every else "false"
    new = rows // 400 if changed_every else 0
    query = f"""
        SELECT i AS line_id, repeat(md5(i::VARCHAR), {text_bytes // 32 + 1})[:{text_bytes}] AS note,
               CASE WHEN {changed} THEN 'changed' ELSE 'city_' || (i % 500)::VARCHAR END AS city,
               (hash(i) % 100000)::BIGINT AS amount,
               TIMESTAMP '2025-06-01' + to_seconds(CASE WHEN {changed} THEN 20000000 ELSE i % 10000000 END) AS modified_at
        FROM range(1, {rows + 1}) t(i)
        WHERE NOT ({'i % 400 = 0' if changed_every else 'false'})
        UNION ALL SELECT i, 'new', 'new', 1, TIMESTAMP '2026-01-02' FROM range({rows + 1}, {rows + 1 + new}) t(i)
    """
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path


def _two_days(root: Path, write_behaviour: str, rows: int) -> list[tuple]:
    _land(root, DAY1, rows)
    _land(root, DAY2, rows, changed_every=50)
    table = _table(write_behaviour)
    load_partition(table, root, DAY1, now=datetime(2026, 1, 1, 23))
    load_partition(table, root, DAY2, now=datetime(2026, 1, 2, 23))
    return _fingerprint(root / "base" / "erp_line")


def _fingerprint(path: Path) -> tuple:
    """Row count, columns and an order-free hash of every row of a Delta table."""
    con = duckdb.connect()
    try:
        con.register("t", DeltaTable(str(path)).to_pyarrow_dataset())
        columns = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM t)").fetchall()]
        row = ", ".join(f'"{c}"' for c in columns)
        return (tuple(columns), *con.execute(f"SELECT count(*), sum(hash({row})::HUGEINT), count(DISTINCT ({row})) FROM t").fetchall()[0])
    finally:
        con.close()


@pytest.mark.parametrize("write_behaviour", ["scd2", "scd1", "append", "overwrite"])
def test_a_tiny_budget_spills_and_gives_the_same_table(tmp_path, monkeypatch, write_behaviour):
    rows = 200_000
    monkeypatch.setenv(TEMP_DIR_ENV, str(tmp_path / "spill"))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64GB")
    unbounded = _two_days(tmp_path / "free", write_behaviour, rows)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "128MB")  # DuckDB gets 96MB: the loads' sorts and joins spill
    bounded = _two_days(tmp_path / "tight", write_behaviour, rows)
    assert bounded == unbounded
    assert bounded[1] >= rows


def test_a_budget_that_cannot_suffice_fails_naming_the_table_and_settings_and_writes_nothing(tmp_path, monkeypatch):
    _land(tmp_path, DAY1, 300_000, text_bytes=200)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64MB")
    monkeypatch.setenv(TEMP_DIR_ENV, str(tmp_path / "spill"))
    monkeypatch.setenv(TEMP_LIMIT_ENV, "1MB")  # no room to spill
    with pytest.raises(MemoryBudgetError) as caught:
        load_partition(_table("scd2"), tmp_path, DAY1)
    message = str(caught.value)
    assert "table 'erp_line'" in message
    assert MEMORY_LIMIT_ENV in message and TEMP_DIR_ENV in message and "64MB" in message
    assert caught.value.transient is False  # the retry rule reads this: never retried
    assert not (tmp_path / "base" / "erp_line").exists()
    assert not (tmp_path / "base" / "_state" / "erp_line").exists()


def test_the_budget_comes_from_the_environment_or_a_default():
    assert parse_size("3GB") == 3 * 10**9
    assert parse_size("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="MEDALLION_MEMORY_LIMIT='lots'"):
        parse_size("lots")
    budget = current_budget()
    assert budget.limit >= 64 * 10**6 and budget.duckdb_limit < budget.share <= budget.limit


_CHILD = """
import json, sys
from datetime import date
from pathlib import Path
sys.path.insert(0, {tests!r})
from medallion_assets.engine.base import load_partition
from medallion_assets.engine.base.model import BaseTable
table = BaseTable.model_validate(json.loads({meta!r}))
result = load_partition(table, Path({root!r}), date(2026, 1, 1))
# VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's across fork and exec.
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"inserted": result.inserted, "peak": peak}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("write_behaviour", ["scd2", "overwrite"])
def test_a_load_in_its_own_process_stays_far_below_the_table_size(tmp_path, write_behaviour):
    rows = 1_500_000
    _land(tmp_path, DAY1, rows, text_bytes=400)
    con = duckdb.connect()
    try:  # the table's size in Arrow, as a load that held it whole would hold it
        landing = next((tmp_path / "landing").rglob("*.parquet"))
        arrow_bytes = con.sql(f"SELECT * FROM read_parquet('{landing}')").to_arrow_table().nbytes
    finally:
        con.close()
    meta = json.dumps(_table(write_behaviour).model_dump(mode="json", exclude_none=True))
    env = {**os.environ, MEMORY_LIMIT_ENV: "256MB", TEMP_DIR_ENV: str(tmp_path / "spill")}
    script = _CHILD.format(tests=str(Path(__file__).resolve().parents[3]), meta=meta, root=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["inserted"] == rows
    assert arrow_bytes > 600 * 2**20
    # Python, DuckDB, pyarrow and deltalake take about 250MB before any row, so a load that held the
    # table (> 600MB) would peak above table + 250MB; a bounded one peaks at 440-510MB here.
    assert figures["peak"] < arrow_bytes, f"peak {figures['peak'] / 2**20:.0f} MB for a {arrow_bytes / 2**20:.0f} MB table"
