"""Finance drops a whole-year budget forecast on the first day and on every 1st of a month."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from medallion_assets.sample.erp import CATEGORIES, REGIONS, advance_erp_database, create_erp_database
from medallion_assets.sample.finance import write_budget_drops

START = date(2026, 1, 30)
SIMULATED = [date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 2)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    db = tmp_path / "sources" / "erp.duckdb"
    create_erp_database(db, seed=3, start_date=START, days=4, customers=100, order_lines=500)
    assert advance_erp_database(db, days=3) == SIMULATED[1:]
    return db


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _utc_0900(day: date) -> float:
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()


def test_drops_on_the_first_day_and_the_first_of_each_month(source: Path, tmp_path: Path) -> None:
    drops = tmp_path / "sources" / "drops" / "finance"
    written = write_budget_drops(drops, source, days=SIMULATED)
    assert [p.name for p in written] == ["budget_20260130.csv", "budget_20260201.csv"]
    assert sorted(p.name for p in drops.iterdir()) == ["budget_20260130.csv", "budget_20260201.csv"]  # no temp files
    for path, day in zip(written, (date(2026, 1, 30), date(2026, 2, 1)), strict=True):
        assert path.stat().st_mtime == _utc_0900(day)

    first, revised = (_read(p) for p in written)
    assert list(first[0]) == ["budget_month", "category", "region", "budget_amount"]
    assert len(first) == 12 * len(CATEGORIES) * len(REGIONS)
    assert {r["budget_month"] for r in first} == {f"2026-{m:02d}-01" for m in range(1, 13)}
    assert {(r["budget_month"], r["category"], r["region"]) for r in first} == {
        (r["budget_month"], r["category"], r["region"]) for r in revised
    }
    for row in first + revised:
        amount = Decimal(row["budget_amount"])
        assert amount > 0 and amount == amount.quantize(Decimal("0.01")) and "." in row["budget_amount"]
    # a revised forecast: same grain, other numbers
    assert [r["budget_amount"] for r in first] != [r["budget_amount"] for r in revised]


def test_budget_codes_match_the_erp(source: Path, tmp_path: Path) -> None:
    [path] = write_budget_drops(tmp_path / "drops", source, days=[START])
    rows = _read(path)
    con = duckdb.connect(str(source), read_only=True)
    try:
        categories = {c for (c,) in con.sql("SELECT DISTINCT category FROM product").fetchall()}
        regions = {r for (r,) in con.sql("SELECT DISTINCT region FROM employee").fetchall()}
    finally:
        con.close()
    assert {r["category"] for r in rows} == categories == set(CATEGORIES)
    assert {r["region"] for r in rows} == regions == set(REGIONS)


def test_existing_drops_are_left_alone_and_rewrites_are_identical(source: Path, tmp_path: Path) -> None:
    drops = tmp_path / "drops"
    first, second = write_budget_drops(drops, source, days=SIMULATED)
    content = first.read_bytes()
    assert write_budget_drops(drops, source, days=SIMULATED) == []
    assert first.stat().st_mtime == _utc_0900(START)

    first.unlink()
    advance_erp_database(source, days=2)  # the source moved on: the old drop is still the same file
    assert write_budget_drops(drops, source, days=SIMULATED) == [first]
    assert first.read_bytes() == content
    assert second.stat().st_mtime == _utc_0900(date(2026, 2, 1))


def test_days_outside_the_simulation_are_refused(source: Path, tmp_path: Path) -> None:
    drops = tmp_path / "drops"
    with pytest.raises(ValueError, match=r"2026-03-01.*erp\.duckdb"):
        write_budget_drops(drops, source, days=[date(2026, 2, 1), date(2026, 3, 1)])
    with pytest.raises(ValueError, match="2026-01-01"):
        write_budget_drops(drops, source, days=[date(2026, 1, 1)])
    assert not drops.exists() or not any(drops.iterdir())
