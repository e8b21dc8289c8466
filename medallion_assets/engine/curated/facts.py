"""Facts and bridges: business keys mapped to surrogate keys by naming convention, then written
with one of five patterns (overwrite, append, merge, incremental, replace).

A result column ``<dimension>[_<role>]_key`` becomes ``<dimension>[_<role>]_id`` (the calendar
keeps its smart key ``calendar[_<role>]_key``, checked against ``dim_calendar``); SCD2 dimensions
are matched on the version valid at the end of the fact's day; anything unmatched maps to -1.
All of it is set-based DuckDB SQL in the load's own database: the SQL's result and the mapped
batch are temporary tables that spill past the memory limit, dimensions are lazy Delta scans,
and the rows stream into the Delta writer; no per-row Python and no table held in Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable

from medallion_assets.engine.base.history import OPEN_END
from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.curated.calendar import date_to_key
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.keys import KeyMapping, resolve_key_columns
from medallion_assets.engine.curated.model import CalendarMeta, DimensionMeta, FactMeta
from medallion_assets.engine.curated.sql import (
    check_identifier,
    column_types,
    is_delta_table,
    parse_select,
    q,
    sandbox,
    select_into,
)
from medallion_assets.engine.curated.tables import (
    LOW_DATE,
    UNKNOWN_ID,
    curated_path,
    finish,
    table_lock,
)
from medallion_assets.engine.memory import budgeted
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.sqltext import literal
from medallion_assets.engine.storage.delta_copy import STREAM_ROWS, merge_rows, write_reader
from medallion_assets.engine.storage.lake import LakeRoot, open_delta, write_delta
from medallion_assets.engine.storage.scan import register_delta

_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"})


def _is_integer(duck_type: str) -> bool:
    return duck_type in _INTEGER_TYPES


def _day_end(column: str, duck_type: str) -> str:
    """SQL for the last microsecond of the fact's day, NULL when the value is not a valid date."""
    if _is_integer(duck_type):
        start = f"try_strptime(CAST(b.{q(column)} AS VARCHAR), '%Y%m%d')"
    elif duck_type == "DATE" or duck_type.startswith("TIMESTAMP"):
        start = f"CAST(CAST(b.{q(column)} AS DATE) AS TIMESTAMP)"
    else:
        raise CuratedError(f"column {column!r} must be a yyyymmdd integer or a date to pick SCD2 versions")
    return f"({start} + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)"


def map_keys(
    con: duckdb.DuckDBPyConnection,
    mappings: list[KeyMapping],
    dimension_data: Mapping[str, DeltaTable],
    dimension_meta: Mapping[str, DimensionMeta | CalendarMeta],
    *,
    scd2_date_column: str = "calendar_key",
) -> dict[str, int]:
    """The temporary table ``mapped``: ``batch`` with each key column replaced by its surrogate id;
    the count of rows mapped to -1 per column.

    ``dimension_data`` maps a dimension name to its Delta table (read lazily).
    """
    types = column_types(con, "batch")
    joins: list[str] = []
    select: list[str] = []
    by_column = {m.column: (i, m) for i, m in enumerate(mappings)}
    date_end = _day_end(scd2_date_column, types[scd2_date_column]) if scd2_date_column in types else None
    for name in {m.dimension for m in mappings}:
        register_delta(con, f"d_{name}", dimension_data[name])
    for column, duck_type in types.items():
        if column not in by_column:
            select.append(f"b.{q(column)}")
            continue
        index, mapping = by_column[column]
        alias = f"j{index}"
        meta = dimension_meta[mapping.dimension]
        if isinstance(meta, CalendarMeta):
            if not _is_integer(duck_type):
                raise CuratedError(f"calendar key column {column!r} must be a yyyymmdd integer")
            joins.append(
                f"LEFT JOIN (SELECT calendar_key AS __bk FROM d_{mapping.dimension} WHERE calendar_key <> {UNKNOWN_ID}) {alias} "
                f"ON b.{q(column)} = {alias}.__bk"
            )
            select.append(f"CAST(coalesce({alias}.__bk, {UNKNOWN_ID}) AS INTEGER) AS {q(mapping.target)}")
            continue
        joins.append(_dimension_join(meta, mapping, alias, date_end))
        select.append(f"CAST(coalesce({alias}.__id, {UNKNOWN_ID}) AS BIGINT) AS {q(mapping.target)}")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE mapped AS SELECT {', '.join(select)} FROM batch b {' '.join(joins)}")
    except duckdb.Error as exc:
        raise CuratedError(f"mapping keys failed: {exc}") from exc
    counts = ", ".join(f"count_if({q(m.target)} = {UNKNOWN_ID})" for m in mappings)
    rows, *unmatched = con.execute(f"SELECT count(*), {counts} FROM mapped").fetchall()[0]
    (before,) = con.execute("SELECT count(*) FROM batch").fetchall()[0]
    if rows != before:  # a broken dimension (duplicate keys) would double rows
        raise CuratedError(f"mapping keys changed the row count from {before} to {rows}")
    return {m.column: int(c or 0) for m, c in zip(mappings, unmatched, strict=True)}


def _dimension_join(meta: DimensionMeta, mapping: KeyMapping, alias: str, date_end: str | None) -> str:
    """The join finding a key's id: the version valid at the end of the fact's day (SCD2, when
    the fact has a date; else the current one), or the key's only row (SCD1)."""
    bk, idc = q(meta.business_key), q(meta.id_column)
    column = q(mapping.column)
    if not meta.is_scd2:
        return (
            f"LEFT JOIN (SELECT {bk} AS __bk, {idc} AS __id FROM d_{mapping.dimension} WHERE {idc} <> {UNKNOWN_ID}) {alias} "
            f"ON b.{column} = {alias}.__bk"
        )
    version = (
        f"CASE WHEN {date_end} IS NULL THEN {alias}.__cur ELSE {date_end} BETWEEN {alias}.__vf AND {alias}.__vt END"
        if date_end
        else f"{alias}.__cur"
    )
    return (
        f"LEFT JOIN (SELECT {bk} AS __bk, {idc} AS __id, lh_valid_from AS __vf, lh_valid_to AS __vt, "
        f"lh_is_current AS __cur FROM d_{mapping.dimension} WHERE {idc} <> {UNKNOWN_ID}) {alias} "
        f"ON b.{column} = {alias}.__bk AND ({version})"
    )


def add_inferred_members(
    meta: DimensionMeta, data_dir: LakeRoot, con: duckdb.DuckDBPyConnection, keys: str, *, now: datetime
) -> int:
    """Append placeholder rows (``lh_is_inferred``) for the business keys of the query ``keys``
    (one column ``k``, run on ``con``) the dimension lacks.

    They copy the unknown member's attributes, get ids above the maximum and, for SCD2, are
    valid from the beginning of time so every fact date finds them. The next dimension load
    fills them in place, keeping the id. Only the new members pass through Arrow.
    """
    path = curated_path(data_dir, meta.table)
    with table_lock(data_dir, meta.table):
        dim = open_delta(path)
        schema = pa.schema(dim.schema().to_arrow())
        register_delta(con, "__dim", dim)
        try:
            types = column_types(con, "__dim")
            bk, idc = q(meta.business_key), q(meta.id_column)
            select = [_inferred_column(name, meta, types) for name in types]
            max_id = con.execute(f"SELECT coalesce(max({idc}), 0) FROM __dim").fetchall()[0][0]
            sql = f"""
                SELECT {', '.join(select)}
                FROM (SELECT DISTINCT k FROM ({keys}) WHERE k IS NOT NULL
                      AND k NOT IN (SELECT {bk} FROM __dim WHERE {idc} <> {UNKNOWN_ID} AND {bk} IS NOT NULL)) m
                CROSS JOIN (SELECT * FROM __dim WHERE {idc} = {UNKNOWN_ID} LIMIT 1) u
                ORDER BY 1"""
            params = {"max_id": max(int(max_id), 0), "now": now, "low": LOW_DATE, "high": OPEN_END}
            params = {k: v for k, v in params.items() if f"${k}" in sql}
            rows = con.sql(sql, params=params).to_arrow_table().cast(schema)
        finally:
            con.execute("DROP VIEW IF EXISTS __dim")
        if rows.num_rows:
            write_delta(path, rows, mode="append")
    return rows.num_rows


def _inferred_column(name: str, meta: DimensionMeta, types: Mapping[str, str]) -> str:
    """One column of an inferred member: a new id, the fact's key, system values, else the unknown member's."""
    fixed = {
        meta.id_column: f"CAST($max_id AS BIGINT) + row_number() OVER (ORDER BY m.k) AS {q(meta.id_column)}",
        meta.business_key: f"CAST(m.k AS {types[meta.business_key]}) AS {q(meta.business_key)}",
        "lh_is_inferred": "true AS lh_is_inferred",
        "lh_is_deleted": "false AS lh_is_deleted",
        "lh_created_date": "CAST($now AS TIMESTAMP) AS lh_created_date",
        "lh_modified_date": "CAST($now AS TIMESTAMP) AS lh_modified_date",
        "lh_valid_from": "CAST($low AS TIMESTAMP) AS lh_valid_from",
        "lh_valid_to": "CAST($high AS TIMESTAMP) AS lh_valid_to",
        "lh_is_current": "true AS lh_is_current",
    }
    return fixed.get(name, f"u.{q(name)}")


def _partition_value(duck_type: str, partition_date: date) -> Any:
    if _is_integer(duck_type):
        return date_to_key(partition_date)
    if duck_type == "DATE":
        return partition_date
    raise CuratedError("the incremental date_column must be a yyyymmdd integer or a DATE")


def check_calendar_covers(
    con: duckdb.DuckDBPyConnection, mappings: list[KeyMapping], dimensions: Mapping[str, Any], *, source: str
) -> None:
    """Fact dates of ``batch`` outside ``dim_calendar`` would all map to the unknown day (-1):
    refuse the load, naming the column, its range and the calendar's. Nulls (and -1) are unknown on purpose."""
    types = column_types(con, "batch")
    for mapping in mappings:
        calendar = dimensions.get(mapping.dimension)
        if not isinstance(calendar, CalendarMeta) or not _is_integer(types.get(mapping.column, "")):
            continue  # map_keys names a type problem
        column = q(mapping.column)
        low, high = con.execute(f"SELECT min({column}), max({column}) FROM batch WHERE {column} <> {UNKNOWN_ID}").fetchall()[0]
        if low is None:
            continue
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
    ``getvariable('changed_since')`` is when the load that wrote the table's current version
    started (NULL when there is none to build on): a ``merge`` fact that reads only base rows
    with a later ``lh_modified_date`` costs the day's change instead of the whole table.
    """
    now = now or utc_now()
    source = str(meta.sql_path)
    spec = meta.spec
    path = curated_path(data_dir, meta.table)
    variables = {
        "partition_date": partition_date,
        "partition_key": date_to_key(partition_date) if partition_date else None,
        "changed_since": previous_load(path) if spec.write_pattern != "overwrite" else None,
    }
    dimensions = [curated_path(data_dir, d.table) for d in meta.dimensions.values()]
    refs = parse_select(meta.sql, source=source)
    with sandbox(data_dir, refs, source=source, variables=variables, also_reads=dimensions) as con:
        select_into(con, meta.sql, "batch", source=source)
        columns = _checked_columns(con, meta, partition_date=partition_date, source=source)
        mappings, warnings = resolve_key_columns(
            columns, meta.dimensions, degenerate=spec.degenerate_keys, source=source, strict=spec.map_keys
        )
        unmatched: dict[str, int] = {}
        inferred: dict[str, int] = {}
        relation = "batch"
        if spec.map_keys and mappings:
            check_calendar_covers(con, mappings, meta.dimensions, source=source)
            inferred = _infer_members(meta, mappings, con, data_dir, now=now, source=source)
            try:
                unmatched = map_keys(
                    con, mappings, _dimension_scans(meta, mappings, data_dir, source=source), meta.dimensions,
                    scd2_date_column=spec.scd2_date_column,
                )
            except CuratedError as exc:
                raise CuratedError(f"{source}: {exc}") from None
            con.execute("DROP TABLE batch")
            relation = "mapped"
        batch = _Batch(con, relation, now)
        with table_lock(data_dir, meta.table):
            try:
                inserted, updated, deleted = _write(meta, path, batch, partition_date=partition_date, source=source)
            finally:
                batch.close()
    written = [meta.table, *(meta.dimensions[d].table for d, n in inferred.items() if n)]
    return finish(
        meta.table,
        path,
        write_pattern=meta.spec.write_pattern,
        rows_read=batch.num_rows,
        inserted=inserted,
        updated=updated,
        replaced=deleted,
        unmatched=unmatched,
        inferred={meta.dimensions[d].table: n for d, n in inferred.items()},
        warnings=warnings,
        written=written,
    )


LOADED_AT = "medallion.loaded_at"  # commit metadata of a fact write: when its load started (UTC, ISO)
_KEEPS_CONTENT = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})


def previous_load(path: Path) -> datetime | None:
    """When the load that wrote the table's current content started, from its commit's metadata;
    ``None`` when the content comes from anything else (a restore, a delete, an older writer), so
    the next load rebuilds from all rows rather than trust it."""
    if not is_delta_table(path):
        return None
    for commit in open_delta(path).history(20):  # newest first
        if LOADED_AT in commit:
            return datetime.fromisoformat(str(commit[LOADED_AT]))
        if commit.get("operation") not in _KEEPS_CONTENT:
            return None
    return None


def _loaded_at(now: datetime) -> CommitProperties:
    return CommitProperties(custom_metadata={LOADED_AT: now.isoformat()})


def _checked_columns(con: duckdb.DuckDBPyConnection, meta: FactMeta, *, partition_date: date | None, source: str) -> list[str]:
    """The result's column names, checked; an incremental fact's batch cut to the partition's day."""
    types = column_types(con, "batch")
    for name in types:
        try:
            check_identifier(name)
        except CuratedError:
            raise CuratedError(f"{source}: result column {name!r} is not lower snake_case; give it an alias") from None
        if name.startswith("lh_"):
            raise CuratedError(f"{source}: result column {name!r} is reserved for system columns; rename it")
    spec = meta.spec
    if spec.write_pattern == "incremental" and partition_date is not None:
        if spec.date_column not in types:
            raise CuratedError(f"{source}: date_column {spec.date_column!r} is not a column of the SQL result")
        value = _partition_value(types[spec.date_column], partition_date)
        con.execute(f"DELETE FROM batch WHERE {q(spec.date_column)} IS DISTINCT FROM ?", [value])
    return list(types)


def _dimension_scans(meta: FactMeta, mappings: list[KeyMapping], data_dir: LakeRoot, *, source: str) -> dict[str, DeltaTable]:
    """Each mapped dimension's current Delta version."""
    scans = {}
    for name in {m.dimension for m in mappings}:
        dim_path = curated_path(data_dir, meta.dimensions[name].table)
        if not is_delta_table(dim_path):
            raise CuratedError(f"{source}: maps keys to {meta.dimensions[name].table}, which has not been loaded yet")
        scans[name] = open_delta(dim_path)
    return scans


def _infer_members(
    meta: FactMeta, mappings: list[KeyMapping], con: duckdb.DuckDBPyConnection, data_dir: LakeRoot, *, now: datetime, source: str
) -> dict[str, int]:
    created: dict[str, int] = {}
    types = column_types(con, "batch")
    for name in sorted({m.dimension for m in mappings}):
        dim = meta.dimensions[name]
        if not isinstance(dim, DimensionMeta) or not dim.spec.early_arriving_facts:
            continue
        if not is_delta_table(curated_path(data_dir, dim.table)):
            raise CuratedError(f"{source}: maps keys to {dim.table}, which has not been loaded yet")
        columns = [m.column for m in mappings if m.dimension == name]
        key_type = types[columns[0]]
        keys = " UNION ALL ".join(f"SELECT CAST({q(c)} AS {key_type}) AS k FROM batch" for c in columns)
        try:
            created[name] = add_inferred_members(dim, data_dir, con, keys, now=now)
        except (duckdb.Error, pa.ArrowInvalid) as exc:
            raise CuratedError(f"{source}: creating inferred members in {dim.table} failed: {exc}") from exc
    return created


class _Batch:
    """The fact's rows in a temporary table of the load's database, with their load time added as they stream out."""

    def __init__(self, con: duckdb.DuckDBPyConnection, relation: str, now: datetime) -> None:
        self.con, self.relation, self.now = con, relation, now
        self.types = column_types(con, relation)
        (self.num_rows,) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0]
        self._streams: list[pa.RecordBatchReader] = []

    def one(self, sql: str) -> tuple:
        return self.con.execute(sql.replace("{rows}", self.relation)).fetchall()[0]

    def stream(self) -> pa.RecordBatchReader:
        query = f"SELECT *, CAST($now AS TIMESTAMP) AS lh_modified_date FROM {self.relation}"
        self._streams.append(self.con.sql(query, params={"now": self.now}).to_arrow_reader(STREAM_ROWS))
        return self._streams[-1]

    def close(self) -> None:
        """End the streams a failed writer left half read (the connection refuses to close under them)."""
        for stream in self._streams:
            stream.close()


def _write(meta: FactMeta, path: Path, batch: _Batch, *, partition_date: date | None, source: str) -> tuple[int, int, int]:
    """Commit the batch with the write pattern; returns (inserted, updated, deleted)."""
    spec = meta.spec
    pattern = spec.write_pattern
    exists = is_delta_table(path)
    for column in [*spec.primary_key] if pattern == "merge" else []:
        if column not in batch.types:
            raise CuratedError(f"{source}: primary_key column {column!r} is not a column of the result")
    try:
        if pattern == "overwrite" or not exists:
            if pattern in ("incremental", "replace", "merge") and not exists:
                _check_batch(meta, batch, source)
            old = open_delta(path).to_pyarrow_dataset().count_rows() if exists else 0
            write_reader(batch.stream(), path, mode="overwrite", schema_mode="overwrite", commit_properties=_loaded_at(batch.now))
            return batch.num_rows, 0, old
        if pattern == "append":
            write_delta(path, batch.stream(), mode="append", commit_properties=_loaded_at(batch.now))
            return batch.num_rows, 0, 0
        _check_batch(meta, batch, source)
        if batch.num_rows == 0 and (pattern != "incremental" or partition_date is None):
            return 0, 0, 0  # an incremental partition's day with no rows left is emptied
        if pattern == "merge":
            predicate = " AND ".join(f"t.{q(c)} = s.{q(c)}" for c in spec.primary_key)
            metrics = (
                merge_rows(open_delta(path), batch.stream(), predicate=predicate, commit_properties=_loaded_at(batch.now))
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics.get("num_target_rows_inserted", 0)), int(metrics.get("num_target_rows_updated", 0)), 0
        predicate, replaced = _replaced_rows(meta, batch, partition_date=partition_date)
        old = open_delta(path).to_pyarrow_dataset().count_rows(filter=replaced)
        write_delta(path, batch.stream(), mode="overwrite", predicate=predicate, commit_properties=_loaded_at(batch.now))
        return batch.num_rows, 0, old
    except CuratedError:
        raise
    except Exception as exc:  # deltalake raises several types; name the table and keep the cause
        raise CuratedError(f"{source}: writing {meta.table} ({pattern}) failed: {exc}") from exc


def _replaced_rows(meta: FactMeta, batch: _Batch, *, partition_date: date | None) -> tuple[str, pc.Expression]:
    """The stored rows the batch replaces, its days (incremental) or its range (replace): as the
    Delta predicate of the write and as a dataset filter to count them."""
    spec = meta.spec
    if spec.write_pattern == "incremental":
        column = spec.date_column
        if partition_date is not None:
            values = [_partition_value(batch.types[column], partition_date)]
        else:
            values = [row[0] for row in batch.con.execute(
                f"SELECT DISTINCT {q(column)} FROM {batch.relation} WHERE {q(column)} IS NOT NULL ORDER BY 1"
            ).fetchall()]
        return f"{q(column)} IN ({', '.join(literal(v) for v in values)})", pc.field(column).isin(values)
    column = spec.range_column or ""
    low, high = batch.one(f"SELECT min({q(column)}), max({q(column)}) FROM {{rows}}")
    predicate = f"{q(column)} >= {literal(low)} AND {q(column)} <= {literal(high)}"
    return predicate, (pc.field(column) >= low) & (pc.field(column) <= high)


def _check_batch(meta: FactMeta, batch: _Batch, source: str) -> None:
    spec = meta.spec
    needed = {
        "merge": list(spec.primary_key),
        "incremental": [spec.date_column],
        "replace": [spec.range_column or ""],
    }.get(spec.write_pattern, [])
    for column in needed:
        if column not in batch.types:
            raise CuratedError(f"{source}: {spec.write_pattern} needs column {column!r}, which the result lacks")
        if batch.one(f"SELECT count(*) FROM {{rows}} WHERE {q(column)} IS NULL")[0]:
            raise CuratedError(f"{source}: column {column!r} has nulls; {spec.write_pattern} needs it filled")
    if spec.write_pattern == "merge" and batch.num_rows:
        keys = ", ".join(q(c) for c in spec.primary_key)
        dup = batch.con.execute(f"SELECT {keys}, count(*) FROM {batch.relation} GROUP BY ALL HAVING count(*) > 1 LIMIT 1").fetchall()
        if dup:
            shown = ", ".join(f"{c} = {v!r}" for c, v in zip(spec.primary_key, dup[0], strict=False))
            raise CuratedError(f"{source}: primary key {shown} occurs {dup[0][-1]} times in the batch; merge needs it unique")
