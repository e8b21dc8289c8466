import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from medallion_assets.engine.landing.extract import SourceUnavailable, extract_object, plan_load_types
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage import files as files_module
from medallion_assets.engine.storage.paths import list_landing_files

START = date(2026, 1, 1)


def make_system(**object_overrides) -> SourceSystem:
    customer = {
        "extract_mode": "incremental",
        "watermark_column": "modified_at",
        "primary_key": ["customer_id"],
        "full_every_days": 7,
        "keys_extract": True,
        "format": "csv",
        **object_overrides,
    }
    return SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "duckdb", "database": "sources/shop.duckdb", "clock_query": "select now_ts from clock"},
            "objects": {"customer": customer},
        }
    )


def run_sql(db: Path, *statements: str) -> None:
    con = duckdb.connect(str(db))
    for statement in statements:
        con.execute(statement)
    con.close()


def test_plan_full_on_first_day_and_weekly_delta_and_keys_between():
    obj = make_system().objects["customer"]
    watermark = datetime(2026, 1, 1)
    assert plan_load_types(obj, date(2026, 1, 3), START, None) == ["full"]
    assert plan_load_types(obj, date(2026, 1, 3), START, watermark) == ["delta", "keys"]
    assert plan_load_types(obj, date(2026, 1, 8), START, watermark) == ["full"]


def test_first_extract_is_full_and_named_by_the_source_clock(tmp_path, source_db):
    system = make_system()
    result = extract_object(tmp_path, system, system.objects["customer"], START, partition_start=START)
    assert result.status == "extracted"
    assert [(f.load_type, f.rows) for f in result.landed] == [("full", 2)]
    assert result.landed[0].path.name == "customer_full_20260101T220000.csv"
    assert result.watermark == datetime(2026, 1, 1, 10)
    assert result.landed[0].path.read_text().splitlines()[0] == "customer_id,name,modified_at"


def test_incremental_day_lands_changes_since_watermark_and_all_keys(tmp_path, source_db):
    system = make_system(watermark_lookback_hours=0)
    obj = system.objects["customer"]
    first = extract_object(tmp_path, system, obj, START, partition_start=START)
    run_sql(
        source_db,
        "update clock set now_ts = '2026-01-02 22:00'",
        "delete from customer where customer_id = 1",
        "insert into customer values (3, 'Cy', '2026-01-02 08:00')",
    )
    day2 = extract_object(tmp_path, system, obj, date(2026, 1, 2), partition_start=START, previous_watermark=first.watermark)
    by_type = {f.load_type: f for f in day2.landed}
    assert set(by_type) == {"delta", "keys"}
    assert by_type["delta"].rows == 1 and "Cy" in by_type["delta"].path.read_text()
    keys = by_type["keys"].path.read_text().split()
    assert keys[0] == "customer_id" and sorted(keys[1:]) == ["2", "3"]
    assert day2.watermark == datetime(2026, 1, 2, 8)


def test_lookback_catches_late_arriving_rows(tmp_path, source_db):
    system = make_system(watermark_lookback_hours=48)
    obj = system.objects["customer"]
    first = extract_object(tmp_path, system, obj, START, partition_start=START)
    # A row that reaches the source on day 2 but is stamped before the last watermark.
    run_sql(source_db, "update clock set now_ts = '2026-01-02 22:00'", "insert into customer values (4, 'Late', '2026-01-01 07:00')")
    day2 = extract_object(tmp_path, system, obj, date(2026, 1, 2), partition_start=START, previous_watermark=first.watermark)
    delta = next(f for f in day2.landed if f.load_type == "delta")
    assert "Late" in delta.path.read_text()


def test_existing_extract_is_kept_and_reported_unless_forced(tmp_path, source_db):
    system = make_system()
    obj = system.objects["customer"]
    first = extract_object(tmp_path, system, obj, START, partition_start=START)
    run_sql(source_db, "update clock set now_ts = '2026-01-05 22:00'", "insert into customer values (5, 'New', '2026-01-05 08:00')")
    again = extract_object(tmp_path, system, obj, START, partition_start=START)
    assert again.status == "kept"
    assert [f.path for f in again.landed] == [f.path for f in first.landed]
    assert again.rows_read == 2 and again.watermark == first.watermark
    forced = extract_object(tmp_path, system, obj, START, partition_start=START, force=True)
    assert forced.status == "extracted" and forced.rows_read == 3
    assert forced.replaced_files == (first.landed[0].path,)
    assert [f.path for f in list_landing_files(tmp_path, "shop", "customer")] == [forced.landed[0].path]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_every_format_round_trips_the_rows(tmp_path, source_db, fmt):
    system = make_system(format=fmt)
    result = extract_object(tmp_path, system, system.objects["customer"], START, partition_start=START)
    path = result.landed[0].path
    assert path.suffix == f".{fmt}"
    reader = {"csv": "read_csv_auto", "parquet": "read_parquet", "json": "read_json_auto"}[fmt]
    names = duckdb.sql(f"select name from {reader}('{path}') order by customer_id").fetchall()
    assert names == [("Ann",), ("Bob",)]


def test_missing_database_is_a_clear_error_and_nothing_is_written(tmp_path):
    system = make_system()
    with pytest.raises(SourceUnavailable, match=r"shop.*sources/shop.duckdb does not exist"):
        extract_object(tmp_path, system, system.objects["customer"], START, partition_start=START)
    assert not (tmp_path / "landing").exists()


def test_corrupt_database_is_a_clear_error(tmp_path):
    path = tmp_path / "sources" / "shop.duckdb"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    system = make_system()
    with pytest.raises(SourceUnavailable, match="cannot open database"):
        extract_object(tmp_path, system, system.objects["customer"], START, partition_start=START)


def test_crash_while_writing_leaves_no_file_a_reader_would_pick_up(tmp_path, source_db, monkeypatch):
    system = make_system(format="parquet")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(files_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        extract_object(tmp_path, system, system.objects["customer"], START, partition_start=START)
    assert list_landing_files(tmp_path, "shop", "customer") == []
    leftovers = [p for p in (tmp_path / "landing").rglob("*") if p.is_file()]
    assert leftovers == []


def test_dropped_files_land_by_drop_day_once(tmp_path):
    system = SourceSystem.model_validate(
        {
            "source": "finance",
            "connection": {"type": "drop_folder", "folder": "drops"},
            "objects": {"budget": {"extract_mode": "full", "file_pattern": "budget_*.csv", "format": "csv"}},
        }
    )
    obj = system.objects["budget"]
    with pytest.raises(SourceUnavailable, match="drop folder .*drops does not exist"):
        extract_object(tmp_path, system, obj, START, partition_start=START)
    drops = tmp_path / "drops"
    drops.mkdir()
    dropped = drops / "budget_20260101.csv"
    dropped.write_text("budget_month,category,region,budget_amount\n2026-01-01,Bikes,North,100.00\n")
    (drops / "readme.txt").write_text("ignored")
    stamp = datetime(2026, 1, 1, 9, 0, tzinfo=UTC).timestamp()
    os.utime(dropped, (stamp, stamp))
    first = extract_object(tmp_path, system, obj, START, partition_start=START)
    assert first.status == "extracted" and first.rows_read == 1
    assert first.landed[0].path.name == "budget_full_20260101T090000.csv"
    assert first.landed[0].path.read_bytes() == dropped.read_bytes()
    again = extract_object(tmp_path, system, obj, START, partition_start=START)
    assert again.status == "kept" and len(list_landing_files(tmp_path, "finance", "budget")) == 1
    other_day = extract_object(tmp_path, system, obj, date(2026, 1, 2), partition_start=START)
    assert other_day.status == "nothing_new" and other_day.landed == ()


def test_failed_forced_reextract_keeps_what_already_landed(tmp_path, source_db):
    system = make_system()
    obj = system.objects["customer"]
    first = extract_object(tmp_path, system, obj, START, partition_start=START)
    before = first.landed[0].path.read_bytes()
    source_db.unlink()
    with pytest.raises(SourceUnavailable):
        extract_object(tmp_path, system, obj, START, partition_start=START, force=True)
    assert [f.path for f in list_landing_files(tmp_path, "shop", "customer")] == [first.landed[0].path]
    assert first.landed[0].path.read_bytes() == before
