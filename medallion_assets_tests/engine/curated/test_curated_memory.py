"""Curated loads under a memory budget: a tiny budget spills and gives the same dimensions and
facts as no budget, and a dimension and a fact load in their own process stay far below the
size of the table they write (the SQL's result, the stored dimension and the mapped batch stay
in DuckDB and stream into Delta)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.curated import load_curated_model, load_dimension, load_fact
from medallion_assets.engine.curated.calendar import load_calendar
from medallion_assets.engine.memory import MEMORY_LIMIT_ENV, TEMP_DIR_ENV, MemoryBudgetError, connect
from medallion_assets.engine.storage.delta_copy import write_query

T1, T2 = datetime(2026, 1, 1, 23), datetime(2026, 1, 2, 23)
MODEL = """calendar: {start: '2026-01-01', end: '2026-12-31'}
dimensions:
  customer: {write_pattern: scd2, valid_from_column: modified_at}
  product: {write_pattern: scd1}
facts:
  sales: {%s, degenerate_keys: [line_key]}
"""
PATTERNS = {
    "merge": "write_pattern: merge, primary_key: [line_key]",
    "overwrite": "write_pattern: overwrite",
    "append": "write_pattern: append",
    "incremental": "write_pattern: incremental",
}
SQL = {
    "dim_customer.sql": "SELECT customer_id AS customer_key, note, city, modified_at FROM base.customer",
    "dim_product.sql": "SELECT product_id AS product_key, note AS product_note FROM base.product",
    "fact_sales.sql": "SELECT l.line_id AS line_key, l.customer_id AS customer_key, l.product_id AS product_key, "
    "l.day AS calendar_key, l.amount, l.line_note FROM base.line l",
}


def _model(folder: Path, pattern: str = "merge"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(MODEL % PATTERNS[pattern])
    for name, text in SQL.items():
        (folder / name).write_text(text)
    return load_curated_model(folder)


def _base(root: Path, *, day: int, customers: int, lines: int, text_bytes: int = 60) -> None:
    """Base tables written by DuckDB (never in Python); day 2 changes every 50th customer and
    product and brings new lines and a changed amount for every 100th line."""
    changed = "i % 50 = 0" if day == 2 else "false"
    note = f"repeat(md5(i::VARCHAR), {text_bytes // 32 + 1})[:{text_bytes}]"
    tables = {
        "customer": f"""SELECT i AS customer_id, CASE WHEN {changed} THEN 'moved ' || {note} ELSE {note} END AS note,
                   'city_' || (i % 500)::VARCHAR AS city,
                   TIMESTAMP '2025-06-01' + to_seconds(CASE WHEN {changed} THEN 25000000 ELSE i % 1000000 END) AS modified_at
            FROM range(1, {customers + 1}) t(i)""",
        "product": f"SELECT i AS product_id, CASE WHEN {changed} THEN 'new' ELSE {note} END AS note FROM range(1, 2001) t(i)",
        "line": f"""SELECT i AS line_id, 1 + i % {customers} AS customer_id, 1 + i % 2000 AS product_id,
                   (20260101 + i % 28)::INTEGER AS day, md5(i::VARCHAR) AS line_note,
                   (i % 1000 + CASE WHEN {day} = 2 AND i % 100 = 0 THEN 7 ELSE 0 END)::BIGINT AS amount
            FROM range(1, {lines + (lines // 50 if day == 2 else 0) + 1}) t(i)""",
    }
    con = connect()
    try:
        for name, query in tables.items():
            write_query(con, query, root / "base" / name, mode="overwrite", schema_mode="overwrite")
    finally:
        con.close()


def _fingerprint(path: Path, *, leave_out: tuple[str, ...] = ()) -> tuple:
    """Row count, columns and an order-free hash of every row of a Delta table."""
    con = duckdb.connect()
    try:
        con.register("t", DeltaTable(str(path)).to_pyarrow_dataset())
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM t").fetchall() if r[0] not in leave_out]
        row = ", ".join(f'"{c}"' for c in columns)
        return (tuple(columns), *con.execute(f"SELECT count(*), sum(hash({row})::HUGEINT) FROM t").fetchall()[0])
    finally:
        con.close()


def _two_days(root: Path, *, customers: int, lines: int, pattern: str) -> dict[str, tuple]:
    model = _model(root / "model", pattern)
    load_calendar(model.calendar, root)
    for day, now in ((1, T1), (2, T2)):
        _base(root, day=day, customers=customers, lines=lines)
        for dimension in model.dimensions.values():
            load_dimension(dimension, root, now=now)
        load_fact(model.facts["fact_sales"], root, now=now)
    return {
        table: _fingerprint(root / "curated" / table, leave_out=("lh_modified_date",) if table == "fact_sales" else ())
        for table in ("dim_customer", "dim_product", "fact_sales")
    }


@pytest.mark.parametrize(
    "pattern", ["merge", *(pytest.param(p, marks=pytest.mark.slow) for p in ("overwrite", "append", "incremental"))]
)
def test_a_tiny_budget_spills_and_gives_the_same_dimensions_and_facts(tmp_path, monkeypatch, pattern):
    monkeypatch.setenv(TEMP_DIR_ENV, str(tmp_path / "spill"))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64GB")
    unbounded = _two_days(tmp_path / "free", customers=100_000, lines=200_000, pattern=pattern)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "128MB")  # DuckDB gets 96MB: the merges and key joins spill
    bounded = _two_days(tmp_path / "tight", customers=100_000, lines=200_000, pattern=pattern)
    assert bounded == unbounded
    assert unbounded["dim_customer"][1] == 100_000 + 2_000 + 1  # day 2 versions every 50th; the unknown member
    # both days' lines appended; else day 2's 204,000 lines (merge: day 1's all updated or matched)
    assert unbounded["fact_sales"][1] == (200_000 + 204_000 if pattern == "append" else 204_000)


def test_a_merge_too_big_for_the_budget_fails_as_a_budget_error_and_leaves_the_fact(tmp_path, monkeypatch):
    monkeypatch.setenv(TEMP_DIR_ENV, str(tmp_path / "spill"))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64GB")
    model = _model(tmp_path / "model")
    load_calendar(model.calendar, tmp_path)
    _base(tmp_path, day=1, customers=1_000, lines=1_000_000)
    for dimension in model.dimensions.values():
        load_dimension(dimension, tmp_path, now=T1)
    load_fact(model.facts["fact_sales"], tmp_path, now=T1)
    before = _fingerprint(tmp_path / "curated" / "fact_sales")
    _base(tmp_path, day=2, customers=1_000, lines=1_000_000)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64MB")  # delta-rs's pool is 32MB: the merge's hash join cannot fit
    with pytest.raises(MemoryBudgetError) as caught:
        load_fact(model.facts["fact_sales"], tmp_path, now=T2)
    assert "table 'fact_sales'" in str(caught.value) and MEMORY_LIMIT_ENV in str(caught.value)
    assert caught.value.transient is False
    assert _fingerprint(tmp_path / "curated" / "fact_sales") == before


_CHILD = """
import json, sys
from datetime import datetime
from pathlib import Path
sys.path.insert(0, {tests!r})
from medallion_assets.engine.curated import load_curated_model, load_dimension, load_fact
model = load_curated_model(Path({model!r}))
step = {step!r}
if step == "dimension":
    result = load_dimension(model.dimensions["customer"], Path({root!r}), now=datetime(2026, 1, 1, 23))
else:
    result = load_fact(model.facts["fact_sales"], Path({root!r}), now=datetime(2026, 1, 1, 23))
# VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's across fork and exec.
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"inserted": result.inserted, "peak": peak}}))
"""


def _arrow_bytes(path: Path) -> int:
    """The table's size in Arrow, as a load that held it whole would hold it."""
    return DeltaTable(str(path)).to_pyarrow_table().nbytes


@pytest.mark.slow
def test_a_dimension_and_a_fact_load_in_their_own_process_stay_far_below_the_table_size(tmp_path):
    customers, lines = 1_200_000, 7_000_000
    _base(tmp_path, day=1, customers=customers, lines=lines, text_bytes=400)
    model = _model(tmp_path / "model")
    load_calendar(model.calendar, tmp_path)
    load_dimension(model.dimensions["product"], tmp_path, now=T1)
    env = {**os.environ, MEMORY_LIMIT_ENV: "256MB", TEMP_DIR_ENV: str(tmp_path / "spill")}
    figures = {}
    for step in ("dimension", "fact"):
        script = _CHILD.format(tests=str(Path(__file__).resolve().parents[3]), model=str(tmp_path / "model"), root=str(tmp_path), step=step)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-2000:]
        figures[step] = json.loads(out.stdout.strip().splitlines()[-1])
    sizes = {"dimension": _arrow_bytes(tmp_path / "curated" / "dim_customer"), "fact": _arrow_bytes(tmp_path / "curated" / "fact_sales")}
    assert figures["dimension"]["inserted"] == customers
    assert figures["fact"]["inserted"] == lines
    for step, size in sizes.items():
        print(f"{step}: peak {figures[step]['peak'] / 2**20:.0f} MB for a {size / 2**20:.0f} MB table")
        assert size > 500 * 2**20, (step, size)
        # Python, DuckDB, pyarrow and deltalake take about 250MB before any row; a load that held
        # the table would peak above its size.
        assert figures[step]["peak"] < size, f"{step}: peak {figures[step]['peak'] / 2**20:.0f} MB for a {size / 2**20:.0f} MB table"
