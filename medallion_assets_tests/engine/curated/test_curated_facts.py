"""Facts: key mapping (roles, SCD2 by date, -1, inferred members) and the five write patterns."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from medallion_assets.engine.curated import CuratedError, load_curated_model, load_dimension, load_fact
from medallion_assets.engine.curated.calendar import load_calendar
from medallion_assets.engine.metadata import MetadataError

T1, T2 = datetime(2026, 1, 1), datetime(2026, 1, 10, 12)
CAL = "calendar: {start: '2026-01-01', end: '2026-01-31'}\n"


def _base(data_dir: Path, table: str, data: dict) -> None:
    write_deltalake(str(data_dir / "base" / table), pa.table(data), mode="overwrite", schema_mode="overwrite")


def _model(folder: Path, yaml: str, sql: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml)
    for name, text in sql.items():
        (folder / name).write_text(text)
    return load_curated_model(folder)


def _read(data_dir: Path, table: str) -> list[dict]:
    return DeltaTable(str(data_dir / "curated" / table)).to_pyarrow_table().to_pylist()


def _customers(data_dir: Path, segments: dict[int, str], modified: datetime) -> None:
    keys = sorted(segments)
    _base(data_dir, "customer", {"customer_id": keys, "segment": [segments[k] for k in keys],
                                 "modified_at": pa.array([modified] * len(keys), pa.timestamp("us"))})


CUSTOMER_SQL = {"dim_customer.sql": "SELECT customer_id AS customer_key, segment, modified_at FROM base.customer"}


def test_scd2_lookup_by_fact_date_and_role_playing_calendar(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", CAL + (
        "dimensions:\n  customer: {write_pattern: scd2, valid_from_column: modified_at}\n"
        "facts:\n  sales: {degenerate_keys: [line_key]}\n"), {
        **CUSTOMER_SQL,
        "fact_sales.sql": "SELECT line AS line_key, cust AS customer_key, d AS calendar_key, s AS calendar_ship_key,"
                          " cust AS customer_billto_key FROM base.lines",
    })
    _customers(tmp_path, {1: "retail"}, T1)
    load_calendar(model.calendar, tmp_path)
    load_dimension(model.dimensions["customer"], tmp_path, now=T1)
    _customers(tmp_path, {1: "corporate"}, T2)  # the customer changes on Jan 10th, midday
    load_dimension(model.dimensions["customer"], tmp_path, now=T2)
    _base(tmp_path, "lines", {"line": [1, 2, 3, 4], "cust": [1, 1, 1, 2],
                              "d": pa.array([20260105, 20260110, 20260111, 20260105], pa.int32()),
                              "s": pa.array([20260107, None, -1, 20260106], pa.int32())})
    result = load_fact(model.facts["fact_sales"], tmp_path)
    dim = {r["customer_id"]: r["segment"] for r in _read(tmp_path, "dim_customer")}
    rows = {r["line_key"]: r for r in _read(tmp_path, "fact_sales")}
    assert dim[rows[1]["customer_id"]] == "retail"  # before the change: old version
    assert dim[rows[2]["customer_id"]] == "corporate"  # on the day of the change: the day's final state
    assert dim[rows[3]["customer_id"]] == "corporate"
    assert rows[4]["customer_id"] == -1  # unknown customer
    assert rows[1]["customer_billto_id"] == rows[1]["customer_id"]  # a second role on the same dimension
    assert [rows[i]["calendar_ship_key"] for i in (1, 2, 3, 4)] == [20260107, -1, -1, 20260106]
    assert [rows[i]["calendar_key"] for i in (1, 2, 3, 4)] == [20260105, 20260110, 20260111, 20260105]
    assert result.unmatched == {"calendar_key": 0, "calendar_ship_key": 2, "customer_key": 1, "customer_billto_key": 1}


def test_fact_dates_outside_the_calendar_fail_the_load_naming_column_and_range(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", CAL + "facts:\n  sales: {}\n", {
        "fact_sales.sql": "SELECT d AS calendar_key, s AS calendar_ship_key, amount FROM base.lines"})
    load_calendar(model.calendar, tmp_path)
    _base(tmp_path, "lines", {"d": pa.array([20260105, 20260131], pa.int32()),
                              "s": pa.array([None, 20260203], pa.int32()), "amount": [1, 2]})
    with pytest.raises(CuratedError) as error:
        load_fact(model.facts["fact_sales"], tmp_path)
    message = str(error.value)
    assert "fact_sales.sql" in message
    assert "column 'calendar_ship_key' has dates 20260203..20260203, outside dim_calendar's range 20260101..20260131" in message
    assert not (tmp_path / "curated" / "fact_sales").exists()  # nothing written


def test_early_arriving_fact_creates_inferred_member_filled_later_with_same_id(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", (
        "dimensions:\n  customer: {write_pattern: scd2, early_arriving_facts: true, full_load: true}\n"
        "facts:\n  sales: {}\n"), {
        **CUSTOMER_SQL, "fact_sales.sql": "SELECT cust AS customer_key, amount FROM base.lines"})
    _customers(tmp_path, {1: "retail"}, T1)
    load_dimension(model.dimensions["customer"], tmp_path, now=T1)
    _base(tmp_path, "lines", {"cust": [1, 5, 5], "amount": [1, 2, 3]})
    result = load_fact(model.facts["fact_sales"], tmp_path, now=T1)
    assert result.inferred == {"dim_customer": 1} and result.unmatched == {"customer_key": 0}
    assert set(result.written) == {"fact_sales", "dim_customer"}
    inferred = [r for r in _read(tmp_path, "dim_customer") if r["customer_key"] == 5]
    assert len(inferred) == 1 and inferred[0]["lh_is_inferred"] and inferred[0]["segment"] == "Unknown"
    fact_id = {r["amount"]: r["customer_id"] for r in _read(tmp_path, "fact_sales")}[2]
    assert fact_id == inferred[0]["customer_id"] == 2
    _customers(tmp_path, {1: "retail", 5: "corporate"}, T2)  # the customer arrives in the source
    load_dimension(model.dimensions["customer"], tmp_path, now=T2)
    filled = [r for r in _read(tmp_path, "dim_customer") if r["customer_key"] == 5]
    assert len(filled) == 1 and filled[0]["customer_id"] == fact_id
    assert filled[0]["segment"] == "corporate" and not filled[0]["lh_is_inferred"]


def test_unknown_dimension_key_column_is_an_error_or_a_warning_when_mapping_is_off(tmp_path: Path) -> None:
    # Named in the SQL: the model refuses to load (the code location fails before any run).
    with pytest.raises(MetadataError, match=r"fact_x\.sql: column 'planet_key'.*no dimension 'planet'"):
        _model(tmp_path / "a", "facts:\n  x: {}\n", {"fact_x.sql": "SELECT 1 AS planet_key, 2 AS amount"})
    # Behind SELECT *: only the data names the columns, so the load refuses it at run time.
    _base(tmp_path, "planets", {"planet_key": [1], "amount": [2]})
    sql = {"fact_x.sql": "SELECT * FROM base.planets", "fact_y.sql": "SELECT 1 AS planet_key, 2 AS amount"}
    model = _model(tmp_path / "m", "facts:\n  x: {}\n  y: {map_keys: false}\n", sql)
    with pytest.raises(CuratedError, match=r"fact_x\.sql: column 'planet_key'.*no dimension 'planet'"):
        load_fact(model.facts["fact_x"], tmp_path)
    result = load_fact(model.facts["fact_y"], tmp_path)
    assert result.warnings and "planet_key" in result.warnings[0]
    assert _read(tmp_path, "fact_y")[0]["planet_key"] == 1


PATTERN_SQL = "SELECT id AS line_key, day AS calendar_key, amount FROM base.lines"


def _pattern(tmp_path: Path, yaml: str):
    model = _model(tmp_path / "m", CAL + "facts:\n  f: {" + yaml + ", degenerate_keys: [line_key]}\n",
                   {"fact_f.sql": PATTERN_SQL})
    load_calendar(model.calendar, tmp_path)
    return model.facts["fact_f"]


def _lines(data_dir: Path, rows: list[tuple[int, int, int]]) -> None:
    _base(data_dir, "lines", {"id": [r[0] for r in rows], "day": pa.array([r[1] for r in rows], pa.int32()),
                              "amount": [r[2] for r in rows]})


def _content(data_dir: Path) -> list[tuple]:
    return sorted((r["line_key"], r["calendar_key"], r["amount"]) for r in _read(data_dir, "fact_f"))


def test_overwrite_and_append(tmp_path: Path) -> None:
    over = _pattern(tmp_path, "write_pattern: overwrite")
    _lines(tmp_path, [(1, 20260101, 10), (2, 20260102, 20)])
    load_fact(over, tmp_path)
    _lines(tmp_path, [(3, 20260103, 30)])
    result = load_fact(over, tmp_path)
    assert _content(tmp_path) == [(3, 20260103, 30)] and (result.inserted, result.replaced) == (1, 2)
    append = _pattern(tmp_path / "a", "write_pattern: append")
    _lines(tmp_path / "a", [(1, 20260101, 10)])
    load_fact(append, tmp_path / "a")
    load_fact(append, tmp_path / "a")
    assert _content(tmp_path / "a") == [(1, 20260101, 10), (1, 20260101, 10)]


def test_merge_by_primary_key(tmp_path: Path) -> None:
    merge = _pattern(tmp_path, "write_pattern: merge, primary_key: [line_key]")
    _lines(tmp_path, [(1, 20260101, 10), (2, 20260102, 20)])
    load_fact(merge, tmp_path)
    _lines(tmp_path, [(2, 20260102, 25), (3, 20260103, 30)])
    result = load_fact(merge, tmp_path)
    assert _content(tmp_path) == [(1, 20260101, 10), (2, 20260102, 25), (3, 20260103, 30)]
    assert (result.inserted, result.updated) == (1, 1)
    _lines(tmp_path, [(4, 20260101, 1), (4, 20260101, 2)])
    with pytest.raises(CuratedError, match="line_key = 4 occurs 2 times"):
        load_fact(merge, tmp_path)


CHANGED_SQL = (
    "SELECT id AS line_key, day AS calendar_key, amount FROM base.lines "
    "WHERE getvariable('changed_since') IS NULL OR lh_modified_date > getvariable('changed_since')"
)


def test_a_merge_fact_can_read_only_the_base_rows_changed_since_its_last_load(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", CAL + "facts:\n  f: {write_pattern: merge, primary_key: [line_key], degenerate_keys: [line_key]}\n",
                   {"fact_f.sql": CHANGED_SQL})
    load_calendar(model.calendar, tmp_path)
    fact = model.facts["fact_f"]

    def lines(rows: list[tuple[int, int, datetime]]) -> None:
        _base(tmp_path, "lines", {"id": [r[0] for r in rows], "day": pa.array([20260101] * len(rows), pa.int32()),
                                  "amount": [r[1] for r in rows], "lh_modified_date": pa.array([r[2] for r in rows], pa.timestamp("us"))})

    day1, day2, day3 = datetime(2026, 1, 1, 22), datetime(2026, 1, 2, 22), datetime(2026, 1, 3, 22)
    lines([(1, 10, day1), (2, 20, day1), (3, 30, day1)])
    first = load_fact(fact, tmp_path, now=day1 + timedelta(minutes=5))
    assert first.inserted == 3
    lines([(1, 10, day1), (2, 25, day2), (3, 30, day1), (4, 40, day2)])  # the base load of day 2 changed 2 and added 4
    second = load_fact(fact, tmp_path, now=day2 + timedelta(minutes=5))
    assert second.rows_read == 2 and (second.inserted, second.updated) == (1, 1)  # only the two changed rows were read
    assert _content(tmp_path) == [(1, 20260101, 10), (2, 20260101, 25), (3, 20260101, 30), (4, 20260101, 40)]
    DeltaTable(str(tmp_path / "curated" / "fact_f")).optimize.compact()  # keeps the content: still builds on it
    lines([(1, 11, day3), (2, 25, day2), (3, 30, day1), (4, 40, day2)])
    third = load_fact(fact, tmp_path, now=day3 + timedelta(minutes=5))
    assert (third.inserted, third.updated) == (0, 1)
    DeltaTable(str(tmp_path / "curated" / "fact_f")).restore(0)  # a rollback: the next load reads every row again
    fourth = load_fact(fact, tmp_path, now=day3 + timedelta(minutes=10))
    assert (fourth.inserted, fourth.updated) == (1, 3)
    assert _content(tmp_path) == [(1, 20260101, 11), (2, 20260101, 25), (3, 20260101, 30), (4, 20260101, 40)]


def test_incremental_replaces_the_dates_in_the_batch_or_the_partition(tmp_path: Path) -> None:
    inc = _pattern(tmp_path, "write_pattern: incremental")
    assert inc.is_partitioned
    _lines(tmp_path, [(1, 20260101, 10), (2, 20260102, 20), (3, 20260102, 21)])
    load_fact(inc, tmp_path)
    _lines(tmp_path, [(4, 20260102, 40), (5, 20260103, 50)])
    load_fact(inc, tmp_path)  # days 2 and 3 replaced, day 1 kept
    assert _content(tmp_path) == [(1, 20260101, 10), (4, 20260102, 40), (5, 20260103, 50)]
    _lines(tmp_path, [(6, 20260101, 60), (7, 20260103, 70)])
    result = load_fact(inc, tmp_path, partition_date=date(2026, 1, 3))  # only that day
    assert _content(tmp_path) == [(1, 20260101, 10), (4, 20260102, 40), (7, 20260103, 70)]
    assert (result.inserted, result.replaced) == (1, 1)
    _lines(tmp_path, [(6, 20260101, 60)])
    load_fact(inc, tmp_path, partition_date=date(2026, 1, 2))  # the day vanished from the source
    assert _content(tmp_path) == [(1, 20260101, 10), (7, 20260103, 70)]


def test_replace_deletes_the_batch_key_range_then_inserts(tmp_path: Path) -> None:
    rep = _pattern(tmp_path, "write_pattern: replace, range_column: line_key")
    _lines(tmp_path, [(1, 20260101, 10), (2, 20260101, 20), (3, 20260101, 30), (9, 20260101, 90)])
    load_fact(rep, tmp_path)
    _lines(tmp_path, [(2, 20260102, 22), (4, 20260102, 44)])
    result = load_fact(rep, tmp_path)
    assert _content(tmp_path) == [(1, 20260101, 10), (2, 20260102, 22), (4, 20260102, 44), (9, 20260101, 90)]
    assert (result.inserted, result.replaced) == (2, 2)


def test_replace_on_a_timestamp_range_column(tmp_path: Path) -> None:
    # The delete predicate's timestamps are microsecond literals: deltalake refuses to compare a
    # microsecond column with a plain (nanosecond) TIMESTAMP.
    model = _model(tmp_path / "m", CAL + "facts:\n  e: {write_pattern: replace, range_column: event_at, "
                   "degenerate_keys: [line_key]}\n",
                   {"fact_e.sql": "SELECT id AS line_key, happened AS event_at, amount FROM base.events"})
    load_calendar(model.calendar, tmp_path)

    def events(rows: list[tuple[int, datetime, int]]) -> None:
        _base(tmp_path, "events", {"id": [r[0] for r in rows], "happened": pa.array([r[1] for r in rows], pa.timestamp("us")),
                                   "amount": [r[2] for r in rows]})

    early, mid, late = datetime(2026, 1, 1, 8), datetime(2026, 1, 2, 9, 30, 0, 250_000), datetime(2026, 1, 5)
    events([(1, early, 10), (2, mid, 20), (3, late, 30)])
    load_fact(model.facts["fact_e"], tmp_path)
    events([(4, datetime(2026, 1, 2), 40), (5, mid, 50)])  # covers 2 Jan 00:00 .. mid: replaces line 2
    result = load_fact(model.facts["fact_e"], tmp_path)
    assert sorted((r["line_key"], r["amount"]) for r in _read(tmp_path, "fact_e")) == [(1, 10), (3, 30), (4, 40), (5, 50)]
    assert (result.inserted, result.replaced) == (2, 1)
