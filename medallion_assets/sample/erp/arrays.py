"""Small NumPy and Arrow helpers the row builders and the day steps share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.sample.erp.reference import LOCATIONS, MAX_LATE_DAYS, REGIONS, WORKDAY_END_S, WORKDAY_START_S


def np_day(value: date) -> np.datetime64:
    return np.datetime64(value, "D")


def times_on(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """A random working-hours timestamp (whole seconds) on each given day."""
    seconds = rng.integers(WORKDAY_START_S, WORKDAY_END_S, size=len(days))
    return days.astype("datetime64[D]").astype("datetime64[us]") + seconds.astype("timedelta64[s]")


def late_offsets(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """0 for on-time rows, 1 or 2 days back for the late-arriving share."""
    late = rng.random(n) < share
    back = rng.integers(1, MAX_LATE_DAYS + 1, size=n)
    return np.where(late, back, 0)


def decimal_array(cents: np.ndarray, precision: int) -> pa.Array:
    """Exact decimal(precision, 2) from integer cents (no float rounding on the way)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype="<i8")
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, 2), len(cents), [None, pa.py_buffer(words.tobytes())])


def take_strings(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(index, pa.int64()))


def column_values(table: pa.Table, name: str) -> np.ndarray:
    return as_numpy(table.column(name))


def as_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.to_numpy(zero_copy_only=False)


def choose_from(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` distinct elements of ``pool`` (which is in key order), sorted."""
    k = min(int(k), len(pool))
    if k <= 0:
        return pool[:0]
    return np.sort(rng.choice(pool, size=k, replace=False))


def query_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    return con.sql(sql, params=params).to_arrow_table()


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def insert_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    with registered(con, "sample_batch", rows):
        con.execute(f'INSERT INTO "{table_name}" BY NAME SELECT * FROM sample_batch')


def location_index(cities: pa.Array | pa.ChunkedArray) -> np.ndarray:
    index = pc.index_in(cities, value_set=pa.array([c for c, _, _ in LOCATIONS]))
    return as_numpy(pc.fill_null(index, 0)).astype(np.int64)


LOC_REGION = np.array([REGIONS.index(r) for _, _, r in LOCATIONS], dtype=np.int64)
