"""Two runs writing the same Base table at once (a backfill racing a sensor run) lose nothing.

Four real processes (spawn) each load one day of the sample into the same tables, released
together by a barrier; the tables must then equal a plain day-by-day load of a second copy of the
same sample. Without the per-table lock in ``load_partition`` the racing read-compute-commit
cycles either fail with a Delta commit conflict or commit results computed from a stale read.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import traceback
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base import load_base_tables, load_partition, table_path
from medallion_assets.sample import generate_sample

pytestmark = pytest.mark.slow  # four loader processes at once

TABLES = ("erp_customer", "erp_sales_order_line")
IGNORED = {"lh_created_date", "lh_modified_date"}


def _tables():
    by_name = {t.name: t for t in load_base_tables()}
    return [by_name[name] for name in TABLES]


def _worker(data_dir: str, day: date, barrier, results) -> None:
    """Load one day of every table under test, starting when all workers are ready."""
    try:
        tables = _tables()
        barrier.wait(timeout=60)
        for table in tables:
            load_partition(table, Path(data_dir), day)
        results.put((day.isoformat(), None))
    except BaseException:  # reported to the parent, which fails the test
        results.put((day.isoformat(), traceback.format_exc()))
        raise


def _content(data_dir: Path, name: str) -> list[tuple]:
    table = next(t for t in _tables() if t.name == name)
    data = DeltaTable(str(table_path(data_dir, table))).to_pyarrow_table()
    columns = sorted(c for c in data.column_names if c not in IGNORED)
    data = data.select(columns)
    return sorted(tuple(row.values()) for row in data.to_pylist())


def _sample(folder: Path) -> list[date]:
    return generate_sample(folder, seed=5, days=4, customers=300, order_lines=3000, log=lambda m: None)


@pytest.fixture
def spawnable(monkeypatch):
    """Spawned children import this module by name: put the repository root on their path."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    if __name__ not in sys.modules:  # pragma: no cover - only if pytest's import mode changes
        pytest.skip("test module is not importable by name in a child process")


def _run_together(data_dir: Path, days: list[date]) -> None:
    """One spawned process per day, released together; every one must succeed."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(days)), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(str(data_dir), day, barrier, results)) for day in days]
    for w in workers:
        w.start()
    reports = dict(results.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    failures = {day: error.strip().splitlines()[-1] for day, error in reports.items() if error}
    assert not failures, f"{data_dir.name}: {failures}"
    assert [w.exitcode for w in workers] == [0] * len(days)


def test_concurrent_loads_of_one_table_match_a_sequential_load(tmp_path, spawnable):
    sequential, cold, warm = tmp_path / "sequential", tmp_path / "cold", tmp_path / "warm"
    days = _sample(sequential)
    assert len(days) == 4
    assert _sample(cold) == days
    for index, day in enumerate(days):
        for table in _tables():
            load_partition(table, sequential, day)
        if index == 0:  # a copy holding day 1 already: the later loads race on an existing table
            shutil.copytree(sequential, warm)
    expected = {name: _content(sequential, name) for name in TABLES}
    assert all(expected.values())

    # cold: four first loads race to create the tables; warm: three new days and a re-run of day
    # one race to read-compute-commit the same existing tables.
    for data_dir in (cold, warm):
        _run_together(data_dir, days)
        for name in TABLES:
            got = _content(data_dir, name)
            assert len(got) == len(expected[name]), f"{data_dir.name}, {name}: {len(got)} rows, expected {len(expected[name])}"
            assert got == expected[name], f"{data_dir.name}, {name}: content differs from the sequential load"
    assert (cold / "base" / "_locks").is_dir()
