"""The sample ERP behaves like a real source: it grows, changes, deletes, posts late and twice."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest

from medallion_assets.sample.erp import (
    CATEGORIES,
    COUNTRY_REGION,
    REGIONS,
    advance_erp_database,
    create_erp_database,
    current_source_day,
)
from medallion_assets.sample.erp import days as erp_days

START = date(2026, 1, 1)
DAYS = 10
CUSTOMERS = 500
ORDER_LINES = 5_000
SEED = 7
SOURCE_TABLES = ("customer", "product", "employee", "sales_order_line")
KEYS = {"customer": "customer_id", "product": "product_id", "employee": "employee_id", "sales_order_line": "order_line_id"}


def _rows(db: Path) -> dict[str, list[dict]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table in (*SOURCE_TABLES, "sample_clock", "sample_state"):
            rel = con.sql(f"SELECT * FROM {table} ORDER BY ALL")
            names = [d[0] for d in rel.description]
            out[table] = [dict(zip(names, row, strict=True)) for row in rel.fetchall()]
        return out
    finally:
        con.close()


def _content_hash(db: Path) -> str:
    """Hash of every table's rows in a fixed order (physical row order does not matter)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        parts = []
        for table in (*SOURCE_TABLES, "sample_clock", "sample_state"):
            sql = f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR))) FROM {table} t"
            parts.append(f"{table}:{con.execute(sql).fetchone()}")
    finally:
        con.close()
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _by_key(rows: list[dict], key: str) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def _create(db: Path, *, seed: int = SEED, days: int = DAYS, customers: int = CUSTOMERS, order_lines: int = ORDER_LINES) -> None:
    create_erp_database(db, seed=seed, start_date=START, days=days, customers=customers, order_lines=order_lines)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, list[dict]]]]:
    """The planned run, advanced one day at a time, with a snapshot at the end of every day."""
    db = tmp_path_factory.mktemp("erp") / "sources" / "erp.duckdb"
    _create(db)
    snapshots = [_rows(db)]
    for _ in range(DAYS - 1):
        advance_erp_database(db, days=1)
        snapshots.append(_rows(db))
    return db, snapshots


def _day_changes(snapshots: list[dict[str, list[dict]]], table: str):
    """Per simulated day (after the first): (day, inserted rows, updated (old, new) pairs, deleted keys)."""
    key = KEYS[table]
    for index in range(1, len(snapshots)):
        day = START + timedelta(days=index)
        before = _by_key(snapshots[index - 1][table], key)
        after = _by_key(snapshots[index][table], key)
        inserted = [rows[0] for k, rows in after.items() if k not in before]
        updated = [(before[k][0], rows[0]) for k, rows in after.items() if k in before and rows[0] != before[k][0]]
        deleted = [k for k in before if k not in after]
        yield day, inserted, updated, deleted


def test_create_writes_day_one_with_the_exact_schema(tmp_path: Path) -> None:
    db = tmp_path / "erp.duckdb"
    _create(db, customers=200, order_lines=1_000)
    assert current_source_day(db) == START
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = {
            table: [(name, kind) for name, kind, *_ in con.sql(f"DESCRIBE {table}").fetchall()] for table in SOURCE_TABLES
        }
        assert con.sql("SELECT now_ts FROM sample_clock").fetchall() == [(datetime(2026, 1, 1, 22, 0),)]
        for table in SOURCE_TABLES:
            latest = con.execute(f"SELECT max(modified_at) FROM {table}").fetchone()[0]
            assert latest < datetime(2026, 1, 1, 22, 0), table
        history = con.execute("SELECT count(*) FROM sales_order_line WHERE order_date < DATE '2026-01-01'").fetchone()[0]
        assert history > 700
    finally:
        con.close()
    assert columns["sales_order_line"] == [
        ("order_line_id", "BIGINT"), ("order_id", "BIGINT"), ("line_number", "INTEGER"), ("order_date", "DATE"),
        ("ship_date", "DATE"), ("customer_id", "BIGINT"), ("product_id", "BIGINT"), ("employee_id", "BIGINT"),
        ("quantity", "INTEGER"), ("unit_price", "DECIMAL(12,2)"), ("amount", "DECIMAL(14,2)"), ("modified_at", "TIMESTAMP"),
    ]  # fmt: skip
    assert columns["customer"] == [
        ("customer_id", "BIGINT"), ("customer_name", "VARCHAR"), ("email", "VARCHAR"), ("segment", "VARCHAR"),
        ("city", "VARCHAR"), ("country", "VARCHAR"), ("created_at", "TIMESTAMP"), ("modified_at", "TIMESTAMP"),
    ]  # fmt: skip
    assert columns["product"] == [
        ("product_id", "BIGINT"), ("product_name", "VARCHAR"), ("category", "VARCHAR"), ("subcategory", "VARCHAR"),
        ("list_price", "DECIMAL(12,2)"), ("modified_at", "TIMESTAMP"),
    ]  # fmt: skip
    assert columns["employee"] == [
        ("employee_id", "BIGINT"), ("first_name", "VARCHAR"), ("last_name", "VARCHAR"), ("title", "VARCHAR"),
        ("region", "VARCHAR"), ("manager_id", "BIGINT"), ("hire_date", "DATE"), ("modified_at", "TIMESTAMP"),
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["erp.duckdb"]  # no temp or wal file left behind


def test_same_seed_gives_the_same_database_whatever_the_steps(simulation, tmp_path: Path) -> None:
    db, _ = simulation
    at_once = tmp_path / "at_once.duckdb"
    _create(at_once)
    other_seed = tmp_path / "other.duckdb"
    _create(other_seed, seed=SEED + 1)
    assert _content_hash(other_seed) != _content_hash(at_once)

    assert advance_erp_database(at_once, days=DAYS - 1) == [START + timedelta(days=k) for k in range(1, DAYS)]
    assert _content_hash(at_once) == _content_hash(db)  # one call of nine days == nine calls of one


def test_volumes_reach_the_asked_totals(simulation) -> None:
    db, snapshots = simulation
    final = snapshots[-1]
    assert current_source_day(db) == START + timedelta(days=DAYS - 1)
    assert abs(len(final["customer"]) - CUSTOMERS) <= 0.05 * CUSTOMERS
    distinct_lines = len({row["order_line_id"] for row in final["sales_order_line"]})
    assert abs(distinct_lines - ORDER_LINES) <= 0.05 * ORDER_LINES
    assert abs(len(final["sales_order_line"]) - ORDER_LINES) <= 0.05 * ORDER_LINES
    # most rows are history from day 1
    assert len(snapshots[0]["customer"]) > 0.75 * CUSTOMERS
    assert len(snapshots[0]["sales_order_line"]) > 0.6 * ORDER_LINES


def test_advancing_past_the_plan_keeps_the_daily_rate(tmp_path: Path) -> None:
    db = tmp_path / "erp.duckdb"
    _create(db, days=3, customers=1_000, order_lines=20_000)

    def lines() -> int:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("SELECT count(DISTINCT order_line_id) FROM sales_order_line").fetchone()[0]
        finally:
            con.close()

    at_create = lines()
    advance_erp_database(db, days=2)
    at_plan_end = lines()
    advance_erp_database(db, days=4)
    per_day_planned = (at_plan_end - at_create) / 2
    per_day_after = (lines() - at_plan_end) / 4
    assert per_day_planned > 0
    assert 0.7 < per_day_after / per_day_planned < 1.4


def test_each_day_inserts_updates_and_hard_deletes(simulation) -> None:
    _, snapshots = simulation
    totals: dict[str, dict[str, int]] = {}
    for table in SOURCE_TABLES:
        counts = {"inserted": 0, "updated": 0, "deleted": 0}
        for _, inserted, updated, deleted in _day_changes(snapshots, table):
            counts["inserted"] += len(inserted)
            counts["updated"] += len(updated)
            counts["deleted"] += len(deleted)
        totals[table] = counts
    for table in ("customer", "sales_order_line"):
        assert all(count > 0 for count in totals[table].values()), (table, totals[table])
    assert totals["product"]["updated"] > 0  # price changes
    assert totals["product"]["inserted"] + totals["employee"]["inserted"] + totals["employee"]["updated"] > 0

    # SCD2 material: customers change segment, move (city and country together) or change e-mail;
    # some customers change on more than one day
    kinds: set[str] = set()
    changed_days: dict[int, int] = defaultdict(int)
    for _, _, updated, _ in _day_changes(snapshots, "customer"):
        for old, new in updated:
            changed_days[new["customer_id"]] += 1
            if old["segment"] != new["segment"]:
                kinds.add("segment")
            if old["city"] != new["city"]:
                assert COUNTRY_REGION[new["country"]]  # the country follows the city
                kinds.add("move")
            if old["email"] != new["email"]:
                kinds.add("email")
            assert old["created_at"] == new["created_at"]
    assert kinds == {"segment", "move", "email"}
    assert max(changed_days.values()) >= 2

    # order lines: shipping, quantity corrections with the amount recomputed
    shipped = corrected = 0
    for _, _, updated, _ in _day_changes(snapshots, "sales_order_line"):
        for old, new in updated:
            shipped += old["ship_date"] is None and new["ship_date"] is not None
            corrected += old["quantity"] != new["quantity"]
            assert new["amount"] == new["quantity"] * new["unit_price"]
    assert shipped > 0 and corrected > 0


def test_changes_are_stamped_on_their_day_or_arrive_late(simulation) -> None:
    _, snapshots = simulation
    late_lines = late_customers = 0
    for table in SOURCE_TABLES:
        for day, inserted, updated, _ in _day_changes(snapshots, table):
            changed = inserted + [new for _, new in updated]
            for row in changed:
                stamp: datetime = row["modified_at"]
                assert time(6, 0) <= stamp.time() <= time(21, 59, 59), (table, row)
                assert day - timedelta(days=2) <= stamp.date() <= day, (table, day, row)
            for row in inserted:
                if table == "sales_order_line":
                    assert row["order_date"] == row["modified_at"].date()
                    assert row["ship_date"] is None
                    late_lines += row["modified_at"].date() < day
                if table == "customer":
                    assert row["created_at"] == row["modified_at"]
                    late_customers += row["modified_at"].date() < day
            for old, new in updated:
                assert new["modified_at"] > old["modified_at"], (table, old, new)
                if table == "customer":
                    late_customers += new["modified_at"].date() < day
                if table != "customer":
                    assert new["modified_at"].date() == day  # only new lines and customer changes arrive late
    assert late_lines > 0
    assert late_customers > 0


def test_double_posted_lines_stay_exact_duplicates(simulation) -> None:
    _, snapshots = simulation
    duplicated_later_updated = 0
    for index, snapshot in enumerate(snapshots):
        groups = _by_key(snapshot["sales_order_line"], "order_line_id")
        duplicates = {k: rows for k, rows in groups.items() if len(rows) > 1}
        assert duplicates, f"day {index + 1} has no double-posted line"
        for rows in duplicates.values():
            assert len(rows) == 2 and rows[0] == rows[1]
        if index:
            before = _by_key(snapshots[index - 1]["sales_order_line"], "order_line_id")
            duplicated_later_updated += sum(
                1 for k, rows in duplicates.items() if k in before and len(before[k]) == 2 and before[k][0] != rows[0]
            )
    assert duplicated_later_updated > 0


def test_order_lines_reference_existing_rows_and_consistent_codes(simulation) -> None:
    _, snapshots = simulation
    for snapshot in snapshots:
        customers = {r["customer_id"] for r in snapshot["customer"]}
        products = {r["product_id"] for r in snapshot["product"]}
        employees = {r["employee_id"]: r for r in snapshot["employee"]}
        for line in snapshot["sales_order_line"]:
            assert line["customer_id"] in customers
            assert line["product_id"] in products
            assert line["employee_id"] in employees
            assert line["amount"] == line["quantity"] * line["unit_price"]
            assert line["quantity"] >= 1
            if line["ship_date"] is not None:
                assert 1 <= (line["ship_date"] - line["order_date"]).days <= 5
        for employee in employees.values():
            assert employee["region"] in REGIONS
            assert employee["manager_id"] is None or employee["manager_id"] in employees
        assert {r["category"] for r in snapshot["product"]} == set(CATEGORIES)
        assert all(r["country"] in COUNTRY_REGION for r in snapshot["customer"])
    assert {r["region"] for r in snapshots[-1]["employee"]} == set(REGIONS)


def test_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    db = tmp_path / "erp.duckdb"
    db.write_bytes(b"not yours")
    with pytest.raises(FileExistsError, match="erp.duckdb"):
        _create(db)
    assert db.read_bytes() == b"not yours"
    assert [p.name for p in tmp_path.iterdir()] == ["erp.duckdb"]


def test_a_failing_day_leaves_the_previous_day_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "erp.duckdb"
    _create(db, customers=100, order_lines=500)
    before = _content_hash(db)

    def broken(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(erp_days, "_order_lines_day", broken)  # customers etc. already changed when it fails
    with pytest.raises(RuntimeError, match="power cut"):
        advance_erp_database(db, days=1)
    assert _content_hash(db) == before
    assert current_source_day(db) == START


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"days": 0}, "days"), ({"customers": 5}, "customers"), ({"order_lines": -1}, "order_lines"), ({"seed": -3}, "seed")],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"seed": SEED, "start_date": START, "days": DAYS, "customers": CUSTOMERS, "order_lines": ORDER_LINES}
    with pytest.raises(ValueError, match=message):
        create_erp_database(tmp_path / "erp.duckdb", **{**arguments, **kwargs})
    assert not (tmp_path / "erp.duckdb").exists()


def test_missing_database_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.duckdb"):
        current_source_day(tmp_path / "nowhere.duckdb")
    with pytest.raises(FileNotFoundError, match="nowhere.duckdb"):
        advance_erp_database(tmp_path / "nowhere.duckdb")
