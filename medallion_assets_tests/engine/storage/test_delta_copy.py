"""Delta writes from DuckDB: the files' statistics keep every row findable, the stream writer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from medallion_assets.engine.memory import connect
from medallion_assets.engine.storage.delta_copy import STRING_STATS_MAX, _upper_prefix, write_query, write_reader
from medallion_assets.engine.storage.lake import open_delta

ROWS = """SELECT * FROM (VALUES
    (1, TIMESTAMP '2026-01-02 09:30:00.25', 'x' || repeat('y', 40), true, 1.5::DOUBLE, 12.34::DECIMAL(10,2),
     DATE '2026-01-01', 'short', TIMESTAMPTZ '2026-01-01 00:00:00+00', 123456789012.34::DECIMAL(20,2), NULL::INTEGER),
    (2, TIMESTAMP '2026-01-03 09:30:00.25', 'x' || repeat('z', 40), false, 2.5::DOUBLE, 13.34::DECIMAL(10,2),
     DATE '2026-01-02', 'shorter', TIMESTAMPTZ '2026-01-02 00:00:00+00', 123456789013.34::DECIMAL(20,2), NULL)
) t(id, happened_at, long_text, flag, ratio, amount, day, name, at_utc, big_amount, nothing)"""

FILTERS = [
    "happened_at >= TIMESTAMP '2026-01-01'",
    "happened_at = TIMESTAMP '2026-01-03 09:30:00.25'",
    "long_text = 'x' || repeat('z', 40)",
    "long_text >= 'a'",
    "flag",
    "flag = true",
    "NOT flag",
    "ratio = 2.5",
    "amount = 13.34",
    "amount > 1",
    "big_amount = 123456789013.34",
    "day >= DATE '2025-01-01'",
    "name = 'short'",
    "at_utc >= TIMESTAMPTZ '2026-01-02 00:00:00+00'",
    "nothing IS NULL",
]


@pytest.mark.parametrize("where", FILTERS)
def test_a_filter_over_a_copied_table_finds_the_rows_it_matches(tmp_path: Path, where: str) -> None:
    # deltalake's datasets turn a file's missing min/max into "column >= null" and drop the file
    # from a filtered scan; every column type the copy writes must carry its bounds.
    con = connect()
    con.execute(f"CREATE TEMP TABLE source_rows AS {ROWS}")
    write_query(con, "SELECT * FROM source_rows", tmp_path / "t", mode="overwrite")
    con.register("stored", open_delta(tmp_path / "t").to_pyarrow_dataset())
    (expected,) = con.execute(f"SELECT count(*) FROM source_rows WHERE {where}").fetchall()[0]
    (found,) = con.execute(f"SELECT count(*) FROM stored WHERE {where}").fetchall()[0]
    assert expected > 0
    assert found == expected


def test_a_long_string_is_bounded_by_a_raised_prefix() -> None:
    value = "a" * 40
    bound = _upper_prefix(value)
    assert bound is not None and len(bound) == STRING_STATS_MAX and bound > value
    assert _upper_prefix("short") == "short"


def test_a_stream_overwrites_the_table_and_its_schema(tmp_path: Path) -> None:
    target = tmp_path / "t"
    write_query(connect(), "SELECT 1 AS a, 'x' AS b", target, mode="overwrite")
    source = connect()
    reader = source.sql("SELECT range AS a, range * 1.5 AS c FROM range(1000)").to_arrow_reader(100)
    written = write_reader(reader, target, mode="overwrite", schema_mode="overwrite")
    table = open_delta(target)
    assert written.rows == 1000
    assert pa.schema(table.schema().to_arrow()).names == ["a", "c"]
    assert table.to_pyarrow_dataset().count_rows() == 1000
