"""Facts and bridges: business keys mapped to surrogate keys by naming convention, then written
with one of five patterns (overwrite, append, merge, incremental, replace).

A result column ``<dimension>[_<role>]_key`` becomes ``<dimension>[_<role>]_id`` (the calendar
keeps its smart key ``calendar[_<role>]_key``, checked against ``dim_calendar``); SCD2 dimensions
are matched on the version valid at the end of the fact's day; anything unmatched maps to -1.
All of it is one set-based DuckDB statement per batch, no per-row Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.engine.base.history import OPEN_END
from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.curated.calendar import date_to_key
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.keys import KeyMapping, resolve_key_columns
from medallion_assets.engine.curated.model import CalendarMeta, DimensionMeta, FactMeta
from medallion_assets.engine.curated.sql import check_identifier, is_delta_table, q, run_select
from medallion_assets.engine.curated.tables import (
    LOW_DATE,
    UNKNOWN_ID,
    curated_path,
    finish,
    table_lock,
)
from medallion_assets.engine.memory import budgeted, new_database
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.sqltext import literal
from medallion_assets.engine.storage.delta_copy import merge_rows
from medallion_assets.engine.storage.lake import LakeRoot, open_delta, write_delta


def _day_end(column: str, arrow_type: pa.DataType) -> str:
    """SQL for the last microsecond of the fact's day, NULL when the value is not a valid date."""
    if pa.types.is_integer(arrow_type):
        start = f"try_strptime(CAST(b.{q(column)} AS VARCHAR), '%Y%m%d')"
    elif pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        start = f"CAST(CAST(b.{q(column)} AS DATE) AS TIMESTAMP)"
    else:
        raise CuratedError(f"column {column!r} must be a yyyymmdd integer or a date to pick SCD2 versions")
    return f"({start} + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)"


def map_keys(
    batch: pa.Table,
    mappings: list[KeyMapping],
    dimension_data: Mapping[str, Any],
    dimension_meta: Mapping[str, DimensionMeta | CalendarMeta],
    *,
    scd2_date_column: str = "calendar_key",
) -> tuple[pa.Table, dict[str, int]]:
    """Replace each key column by its surrogate id (in place); count rows mapped to -1 per column.

    ``dimension_data`` maps a dimension name to its Arrow table or dataset.
    """
    con = new_database()
    try:
        con.register("b", batch)
        joins: list[str] = []
        select: list[str] = []
        by_column = {m.column: (i, m) for i, m in enumerate(mappings)}
        date_end: str | None = None
        if scd2_date_column in batch.column_names:
            date_end = _day_end(scd2_date_column, batch.schema.field(scd2_date_column).type)
        for name in {m.dimension for m in mappings}:
            con.register(f"d_{name}", dimension_data[name])
        for column in batch.column_names:
            if column not in by_column:
                select.append(f"b.{q(column)}")
                continue
            index, mapping = by_column[column]
            alias = f"j{index}"
            meta = dimension_meta[mapping.dimension]
            if isinstance(meta, CalendarMeta):
                if not pa.types.is_integer(batch.schema.field(column).type):
                    raise CuratedError(f"calendar key column {column!r} must be a yyyymmdd integer")
                joins.append(
                    f"LEFT JOIN (SELECT calendar_key AS __bk FROM d_{mapping.dimension} WHERE calendar_key <> {UNKNOWN_ID}) {alias} "
                    f"ON b.{q(column)} = {alias}.__bk"
                )
                select.append(f"CAST(coalesce({alias}.__bk, {UNKNOWN_ID}) AS INTEGER) AS {q(mapping.target)}")
                continue
            bk, idc = q(meta.business_key), q(meta.id_column)
            if meta.is_scd2:
                version = (
                    f"CASE WHEN {date_end} IS NULL THEN {alias}.__cur ELSE {date_end} BETWEEN {alias}.__vf AND {alias}.__vt END"
                    if date_end
                    else f"{alias}.__cur"
                )
                joins.append(
                    f"LEFT JOIN (SELECT {bk} AS __bk, {idc} AS __id, lh_valid_from AS __vf, lh_valid_to AS __vt, "
                    f"lh_is_current AS __cur FROM d_{mapping.dimension} WHERE {idc} <> {UNKNOWN_ID}) {alias} "
                    f"ON b.{q(column)} = {alias}.__bk AND ({version})"
                )
            else:
                joins.append(
                    f"LEFT JOIN (SELECT {bk} AS __bk, {idc} AS __id FROM d_{mapping.dimension} WHERE {idc} <> {UNKNOWN_ID}) {alias} "
                    f"ON b.{q(column)} = {alias}.__bk"
                )
            select.append(f"CAST(coalesce({alias}.__id, {UNKNOWN_ID}) AS BIGINT) AS {q(mapping.target)}")
        sql = f"SELECT {', '.join(select)} FROM b {' '.join(joins)}"
        try:
            mapped = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise CuratedError(f"mapping keys failed: {exc}") from exc
        unmatched: dict[str, int] = {}
        if mappings:
            con.register("m", mapped)
            counts = con.execute(
                "SELECT " + ", ".join(f"count_if({q(m.target)} = {UNKNOWN_ID})" for m in mappings) + " FROM m"
            ).fetchall()[0]
            unmatched = {m.column: int(c or 0) for m, c in zip(mappings, counts, strict=True)}
    finally:
        con.close()
    if mapped.num_rows != batch.num_rows:  # a broken dimension (duplicate keys) would double rows
        raise CuratedError(f"mapping keys changed the row count from {batch.num_rows} to {mapped.num_rows}")
    return mapped, unmatched


def add_inferred_members(
    meta: DimensionMeta, data_dir: LakeRoot, keys: pa.Array | pa.ChunkedArray, *, now: datetime
) -> int:
    """Append placeholder rows (``lh_is_inferred``) for business keys the dimension lacks.

    They copy the unknown member's attributes, get ids above the maximum and, for SCD2, are
    valid from the beginning of time so every fact date finds them. The next dimension load
    fills them in place, keeping the id.
    """
    path = curated_path(data_dir, meta.table)
    with table_lock(data_dir, meta.table):
        dim = open_delta(path).to_pyarrow_table()
        con = new_database()
        try:
            con.register("dim", dim)
            con.register("k", pa.table({"k": keys}))
            bk, idc = q(meta.business_key), q(meta.id_column)
            select = []
            for fld in dim.schema:
                name = fld.name
                if name == meta.id_column:
                    select.append(f"CAST($max_id AS BIGINT) + row_number() OVER (ORDER BY m.k) AS {idc}")
                elif name == meta.business_key:
                    select.append(f"CAST(m.k AS {_duck_type(con, name)}) AS {bk}")
                elif name == "lh_is_inferred":
                    select.append("true AS lh_is_inferred")
                elif name == "lh_is_deleted":
                    select.append("false AS lh_is_deleted")
                elif name in ("lh_created_date", "lh_modified_date"):
                    select.append(f"CAST($now AS TIMESTAMP) AS {name}")
                elif name == "lh_valid_from":
                    select.append("CAST($low AS TIMESTAMP) AS lh_valid_from")
                elif name == "lh_valid_to":
                    select.append("CAST($high AS TIMESTAMP) AS lh_valid_to")
                elif name == "lh_is_current":
                    select.append("true AS lh_is_current")
                else:
                    select.append(f"u.{q(name)}")
            max_id = con.execute(f"SELECT coalesce(max({idc}), 0) FROM dim").fetchall()[0][0]
            sql = f"""
                SELECT {', '.join(select)}
                FROM (SELECT DISTINCT k FROM k WHERE k IS NOT NULL
                      AND k NOT IN (SELECT {bk} FROM dim WHERE {idc} <> {UNKNOWN_ID} AND {bk} IS NOT NULL)) m
                CROSS JOIN (SELECT * FROM dim WHERE {idc} = {UNKNOWN_ID} LIMIT 1) u
                ORDER BY 1"""
            params = {"max_id": max(int(max_id), 0), "now": now, "low": LOW_DATE, "high": OPEN_END}
            params = {k: v for k, v in params.items() if f"${k}" in sql}
            rows = con.sql(sql, params=params).to_arrow_table().cast(dim.schema)
        finally:
            con.close()
        if rows.num_rows:
            write_delta(path, rows, mode="append")
    return rows.num_rows


def _duck_type(con: duckdb.DuckDBPyConnection, column: str) -> str:
    types = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM dim").fetchall()}
    return types[column]


def _partition_value(column_type: pa.DataType, partition_date: date) -> Any:
    if pa.types.is_integer(column_type):
        return date_to_key(partition_date)
    if pa.types.is_date(column_type):
        return partition_date
    raise CuratedError("the incremental date_column must be a yyyymmdd integer or a DATE")


def check_calendar_covers(
    batch: pa.Table, mappings: list[KeyMapping], dimensions: Mapping[str, Any], *, source: str
) -> None:
    """Fact dates outside ``dim_calendar`` would all map to the unknown day (-1): refuse the load,
    naming the column, its range and the calendar's. Nulls (and -1) are unknown on purpose."""
    for mapping in mappings:
        calendar = dimensions.get(mapping.dimension)
        if not isinstance(calendar, CalendarMeta) or mapping.column not in batch.column_names:
            continue
        values = batch.column(mapping.column)
        if not pa.types.is_integer(values.type):
            continue  # map_keys names the type problem
        known = pc.filter(values, pc.and_(pc.is_valid(values), pc.not_equal(values, UNKNOWN_ID)))
        if len(known) == 0:
            continue
        low, high = pc.min(known).as_py(), pc.max(known).as_py()
        first, last = date_to_key(calendar.spec.start), date_to_key(calendar.spec.end)
        if low < first or high > last:
            raise CuratedError(
                f"{source}: column {mapping.column!r} has dates {low}..{high}, outside dim_calendar's range "
                f"{first}..{last}; widen calendar start/end in model.yaml"
            )


@budgeted(lambda meta, *args, **kwargs: f"table {meta.table!r}")
def load_fact(
    meta: FactMeta,
    data_dir: LakeRoot,
    *,
    partition_date: date | None = None,
    now: datetime | None = None,
) -> LoadOutcome:
    """Run the fact's SQL, map its keys and write it with the entity's write pattern.

    The SQL can read ``getvariable('partition_date')`` (DATE) and ``getvariable('partition_key')``
    (yyyymmdd) to read less; for incremental facts the batch is cut to the partition's day anyway.
    """
    now = now or utc_now()
    source = str(meta.sql_path)
    spec = meta.spec
    path = curated_path(data_dir, meta.table)
    variables = {
        "partition_date": partition_date,
        "partition_key": date_to_key(partition_date) if partition_date else None,
    }
    batch = run_select(meta.sql, data_dir, source=source, variables=variables)
    for name in batch.column_names:
        try:
            check_identifier(name)
        except CuratedError:
            raise CuratedError(f"{source}: result column {name!r} is not lower snake_case; give it an alias") from None
        if name.startswith("lh_"):
            raise CuratedError(f"{source}: result column {name!r} is reserved for system columns; rename it")

    if spec.write_pattern == "incremental" and partition_date is not None:
        if spec.date_column not in batch.column_names:
            raise CuratedError(f"{source}: date_column {spec.date_column!r} is not a column of the SQL result")
        value = _partition_value(batch.schema.field(spec.date_column).type, partition_date)
        batch = batch.filter(pc.equal(batch.column(spec.date_column), value))

    mappings, warnings = resolve_key_columns(
        batch.column_names, meta.dimensions, degenerate=spec.degenerate_keys, source=source, strict=spec.map_keys
    )
    unmatched: dict[str, int] = {}
    inferred: dict[str, int] = {}
    if spec.map_keys and mappings:
        check_calendar_covers(batch, mappings, meta.dimensions, source=source)
        inferred = _infer_members(meta, mappings, batch, data_dir, now=now, source=source)
        data = {}
        for name in {m.dimension for m in mappings}:
            dim_path = curated_path(data_dir, meta.dimensions[name].table)
            if not is_delta_table(dim_path):
                raise CuratedError(
                    f"{source}: maps keys to {meta.dimensions[name].table}, which has not been loaded yet"
                )
            data[name] = open_delta(dim_path).to_pyarrow_dataset()
        try:
            batch, unmatched = map_keys(
                batch, mappings, data, meta.dimensions, scd2_date_column=spec.scd2_date_column
            )
        except CuratedError as exc:
            raise CuratedError(f"{source}: {exc}") from None
    stamp = pa.repeat(pa.scalar(now, pa.timestamp("us")), batch.num_rows)
    batch = batch.append_column(pa.field("lh_modified_date", pa.timestamp("us")), stamp)

    with table_lock(data_dir, meta.table):
        inserted, updated, deleted = _write(meta, path, batch, partition_date=partition_date, source=source)
    written = [meta.table, *(meta.dimensions[d].table for d, n in inferred.items() if n)]
    return finish(
        meta.table,
        path,
        write_pattern=meta.spec.write_pattern,
        inserted=inserted,
        updated=updated,
        replaced=deleted,
        unmatched=unmatched,
        inferred={meta.dimensions[d].table: n for d, n in inferred.items()},
        warnings=warnings,
        written=written,
    )


def _infer_members(
    meta: FactMeta, mappings: list[KeyMapping], batch: pa.Table, data_dir: LakeRoot, *, now: datetime, source: str
) -> dict[str, int]:
    created: dict[str, int] = {}
    for name in sorted({m.dimension for m in mappings}):
        dim = meta.dimensions[name]
        if not isinstance(dim, DimensionMeta) or not dim.spec.early_arriving_facts:
            continue
        if not is_delta_table(curated_path(data_dir, dim.table)):
            raise CuratedError(f"{source}: maps keys to {dim.table}, which has not been loaded yet")
        columns = [m.column for m in mappings if m.dimension == name]
        keys = pa.chunked_array(
            [chunk for c in columns for chunk in batch.column(c).cast(batch.column(columns[0]).type).chunks],
            type=batch.column(columns[0]).type,
        )
        try:
            created[name] = add_inferred_members(dim, data_dir, keys, now=now)
        except (duckdb.Error, pa.ArrowInvalid) as exc:
            raise CuratedError(f"{source}: creating inferred members in {dim.table} failed: {exc}") from exc
    return created


def _write(
    meta: FactMeta, path: Path, batch: pa.Table, *, partition_date: date | None, source: str
) -> tuple[int, int, int]:
    """Commit ``batch`` with the write pattern; returns (inserted, updated, deleted)."""
    spec = meta.spec
    pattern = spec.write_pattern
    exists = is_delta_table(path)
    for column in [*spec.primary_key] if pattern == "merge" else []:
        if column not in batch.column_names:
            raise CuratedError(f"{source}: primary_key column {column!r} is not a column of the result")
    try:
        if pattern == "overwrite" or not exists:
            if pattern in ("incremental", "replace", "merge") and not exists:
                _check_batch(meta, batch, source)
            old = open_delta(path).to_pyarrow_dataset().count_rows() if exists else 0
            write_delta(path, batch, mode="overwrite", schema_mode="overwrite")
            return batch.num_rows, 0, old
        if pattern == "append":
            write_delta(path, batch, mode="append")
            return batch.num_rows, 0, 0
        _check_batch(meta, batch, source)
        dt = open_delta(path)
        if pattern == "merge":
            if batch.num_rows == 0:
                return 0, 0, 0
            predicate = " AND ".join(f"t.{q(c)} = s.{q(c)}" for c in spec.primary_key)
            metrics = (
                merge_rows(dt, batch, predicate=predicate)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics.get("num_target_rows_inserted", 0)), int(metrics.get("num_target_rows_updated", 0)), 0
        if pattern == "incremental":
            column = spec.date_column
            if partition_date is not None:
                values = [_partition_value(batch.schema.field(column).type, partition_date)]
            else:
                values = sorted(v for v in pc.unique(batch.column(column)).to_pylist() if v is not None)
            if not values:
                return 0, 0, 0
            predicate = f"{q(column)} IN ({', '.join(literal(v) for v in values)})"
            old = dt.to_pyarrow_dataset().count_rows(filter=pc.field(column).isin(values))
        else:  # replace
            column = spec.range_column or ""
            if batch.num_rows == 0:
                return 0, 0, 0
            low, high = pc.min_max(batch.column(column)).values()
            predicate = f"{q(column)} >= {literal(low.as_py())} AND {q(column)} <= {literal(high.as_py())}"
            field = pc.field(column)
            old = dt.to_pyarrow_dataset().count_rows(filter=(field >= low.as_py()) & (field <= high.as_py()))
        write_delta(path, batch, mode="overwrite", predicate=predicate)
        return batch.num_rows, 0, old
    except CuratedError:
        raise
    except Exception as exc:  # deltalake raises several types; name the table and keep the cause
        raise CuratedError(f"{source}: writing {meta.table} ({pattern}) failed: {exc}") from exc


def _check_batch(meta: FactMeta, batch: pa.Table, source: str) -> None:
    spec = meta.spec
    needed = {
        "merge": list(spec.primary_key),
        "incremental": [spec.date_column],
        "replace": [spec.range_column or ""],
    }.get(spec.write_pattern, [])
    for column in needed:
        if column not in batch.column_names:
            raise CuratedError(f"{source}: {spec.write_pattern} needs column {column!r}, which the result lacks")
        if batch.column(column).null_count:
            raise CuratedError(f"{source}: column {column!r} has nulls; {spec.write_pattern} needs it filled")
    if spec.write_pattern == "merge" and batch.num_rows:
        con = new_database()
        try:
            con.register("b", batch)
            keys = ", ".join(q(c) for c in spec.primary_key)
            dup = con.execute(f"SELECT {keys}, count(*) FROM b GROUP BY ALL HAVING count(*) > 1 LIMIT 1").fetchall()
            dup = dup[0] if dup else None
        finally:
            con.close()
        if dup is not None:
            shown = ", ".join(f"{c} = {v!r}" for c, v in zip(spec.primary_key, dup, strict=False))
            raise CuratedError(f"{source}: primary key {shown} occurs {dup[-1]} times in the batch; merge needs it unique")
