"""``dim_calendar``: one generated row per day, keyed by the smart key ``calendar_key`` (yyyymmdd)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from medallion_assets.engine.curated.model import CalendarMeta
from medallion_assets.engine.curated.tables import UNKNOWN_ID, curated_path, finish, read_delta, table_lock
from medallion_assets.engine.memory import new_database
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.storage.lake import LakeRoot, write_delta

CALENDAR_SCHEMA = pa.schema(
    [
        pa.field("calendar_key", pa.int32()),
        pa.field("date", pa.date32()),
        pa.field("year", pa.int32()),
        pa.field("quarter", pa.int32()),
        pa.field("quarter_name", pa.string()),
        pa.field("month", pa.int32()),
        pa.field("month_name", pa.string()),
        pa.field("year_month", pa.int32()),
        pa.field("iso_year", pa.int32()),
        pa.field("week", pa.int32()),
        pa.field("weekday", pa.int32()),
        pa.field("weekday_name", pa.string()),
        pa.field("day_of_month", pa.int32()),
        pa.field("day_of_year", pa.int32()),
        pa.field("is_weekend", pa.bool_()),
    ]
)


def date_to_key(value: date) -> int:
    return value.year * 10000 + value.month * 100 + value.day


def build_calendar(start: date, end: date) -> pa.Table:
    """Days ``start``..``end`` inclusive (ISO weeks, Monday = 1) plus the unknown day ``-1``."""
    if end < start:
        raise ValueError(f"calendar end {end} is before its start {start}")
    con = new_database()
    try:
        table = con.sql(
            f"""
            WITH days AS (SELECT CAST(d AS DATE) AS d FROM range(CAST($start AS DATE), CAST($end AS DATE) + 1, INTERVAL 1 DAY) t(d))
            SELECT CAST(year(d) * 10000 + month(d) * 100 + day(d) AS INTEGER) AS calendar_key,
                   d AS date,
                   year(d) AS year,
                   quarter(d) AS quarter,
                   'Q' || quarter(d) AS quarter_name,
                   month(d) AS month,
                   monthname(d) AS month_name,
                   year(d) * 100 + month(d) AS year_month,
                   isoyear(d) AS iso_year,
                   week(d) AS week,
                   isodow(d) AS weekday,
                   dayname(d) AS weekday_name,
                   day(d) AS day_of_month,
                   dayofyear(d) AS day_of_year,
                   isodow(d) >= 6 AS is_weekend
            FROM days
            UNION ALL
            SELECT {UNKNOWN_ID}, DATE '1900-01-01', -1, -1, 'Unknown', -1, 'Unknown', -1, -1, -1, -1, 'Unknown', -1, -1, false
            ORDER BY calendar_key""",
            params={"start": start, "end": end},
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(CALENDAR_SCHEMA)


def load_calendar(meta: CalendarMeta, data_dir: LakeRoot) -> LoadOutcome:
    """Regenerate ``dim_calendar``; a commit only when the range (or the layout) changed."""
    path = curated_path(data_dir, meta.table)
    table = build_calendar(meta.spec.start, meta.spec.end)
    with table_lock(data_dir, meta.table):
        existing = read_delta(path)
        if existing is not None and existing.schema.equals(table.schema, check_metadata=False):
            old = set(existing.column("calendar_key").to_pylist())
            new = set(table.column("calendar_key").to_pylist())
            inserted, deleted = len(new - old), len(old - new)
        else:
            inserted, deleted = table.num_rows, 0 if existing is None else existing.num_rows
        unchanged = existing is not None and existing.equals(table)
        if not unchanged:
            write_delta(path, table, mode="overwrite", schema_mode="overwrite")
    return finish(
        meta.table, path, inserted=inserted, updated=0, replaced=deleted, written=[] if unchanged else [meta.table]
    )
