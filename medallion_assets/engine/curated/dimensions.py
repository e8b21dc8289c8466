"""Dimensions: SCD1 / SCD2 merges with stable surrogate keys, an unknown member and inferred members.

A dimension ``dim_<name>`` is its SQL's result (one row per business key ``<name>_key``) merged
into the previous table state. The merge is pure (Arrow in, Arrow out, set-based DuckDB SQL) and
the new state is committed as one Delta overwrite, so a failed load leaves the table untouched.

Surrogate keys ``<name>_id``: an existing business key (SCD1) or an unchanged version (SCD2)
keeps its id; new keys or versions get ids above the current maximum, numbered in business-key
order so a rerun on the same input produces the same ids. ``-1`` is the unknown member.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from medallion_assets.engine.base.history import OPEN_END
from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.model import DimensionMeta
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
    TS,
    UNKNOWN_ID,
    curated_path,
    default_for,
    finish,
    table_lock,
)
from medallion_assets.engine.memory import budgeted, new_database
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.storage.delta_copy import STREAM_ROWS, plain_schema, write_reader
from medallion_assets.engine.storage.lake import LakeRoot, open_delta
from medallion_assets.engine.storage.scan import register_delta

SCD1_SYSTEM = ("lh_is_deleted", "lh_is_inferred", "lh_created_date", "lh_modified_date")
SCD2_SYSTEM = (*SCD1_SYSTEM, "lh_valid_from", "lh_valid_to", "lh_is_current")


@dataclass(frozen=True)
class MergeOutcome:
    table: pa.Table
    inserted: int
    updated: int
    deleted: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)


def system_schema(scd2: bool) -> list[pa.Field]:
    fields = [
        pa.field("lh_is_deleted", pa.bool_()),
        pa.field("lh_is_inferred", pa.bool_()),
        pa.field("lh_created_date", TS),
        pa.field("lh_modified_date", TS),
    ]
    if scd2:
        fields += [pa.field("lh_valid_from", TS), pa.field("lh_valid_to", TS), pa.field("lh_is_current", pa.bool_())]
    return fields


def unknown_member(
    incoming_schema: pa.Schema,
    *,
    id_column: str,
    scd2: bool,
    now: datetime,
    overrides: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The ``-1`` row: type-appropriate defaults for every column, overridable per column."""
    overrides = dict(overrides or {})
    unknown_columns = sorted(set(overrides) - set(incoming_schema.names))
    if unknown_columns:
        raise CuratedError(f"unknown_member sets {', '.join(unknown_columns)}, which the SQL does not return")
    row: dict[str, Any] = {id_column: UNKNOWN_ID}
    for fld in incoming_schema:
        row[fld.name] = overrides.get(fld.name, default_for(fld.type))
    row.update(lh_is_deleted=False, lh_is_inferred=False, lh_created_date=now, lh_modified_date=now)
    if scd2:
        row.update(lh_valid_from=LOW_DATE, lh_valid_to=OPEN_END, lh_is_current=True)
    schema = pa.schema([pa.field(id_column, pa.int64()), *incoming_schema, *system_schema(scd2)])
    try:
        return pa.Table.from_pylist([row], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise CuratedError(f"unknown_member default does not fit its column type: {exc}") from exc


def check_incoming(con: duckdb.DuckDBPyConnection, *, id_column: str, business_key: str, source: str) -> None:
    """The result ``inc``: column names, the business key present, not null and unique (else fail before any write)."""
    names = list(column_types(con, "inc"))
    for name in names:
        try:
            check_identifier(name)
        except CuratedError:
            raise CuratedError(f"{source}: result column {name!r} is not lower snake_case; give it an alias") from None
        if name == id_column or name.startswith("lh_"):
            raise CuratedError(f"{source}: result column {name!r} is reserved for the dimension; rename it")
    if len(set(names)) != len(names):
        raise CuratedError(f"{source}: the SQL returns a column name twice: {names}")
    if business_key not in names:
        raise CuratedError(f"{source}: the SQL must return the business key column {business_key!r}")
    nulls = con.execute(f"SELECT count(*) FROM inc WHERE {q(business_key)} IS NULL").fetchall()[0][0]
    if nulls:
        raise CuratedError(f"{source}: {nulls} row(s) have a null business key {business_key}; the table was left untouched")
    dup = con.execute(
        f"SELECT {q(business_key)}, count(*) FROM inc GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchall()
    if dup:
        raise CuratedError(
            f"{source}: duplicate business key {business_key} = {dup[0][0]!r} ({dup[0][1]} rows); "
            "the table was left untouched"
        )


@dataclass(frozen=True)
class Projection:
    """Existing columns cast to the incoming types; columns new to the SQL are NULL in old rows."""

    types: dict[str, str]
    existing: set[str]

    def __call__(self, column: str, alias: str = "e") -> str:
        if column in self.existing:
            return f"CAST({alias}.{q(column)} AS {self.types[column]})"
        return f"CAST(NULL AS {self.types[column]})"


@dataclass(frozen=True)
class MergePlan:
    """The merged dimension as a query over the connection's ``inc`` and ``ex`` (read when it is
    streamed out), and what the merge changes."""

    query: str
    params: dict[str, Any]
    inserted: int
    updated: int
    deleted: int
    unknown_restored: bool

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted or self.unknown_restored)

    def rows(self, con: duckdb.DuckDBPyConnection, *, scd2: bool) -> pa.RecordBatchReader:
        """The merged rows as a stream, with the dimension's column types."""
        reader = con.sql(self.query, params=_bind(self.query, self.params)).to_arrow_reader(STREAM_ROWS)
        typed = typed_schema(reader.schema, scd2=scd2)
        return pa.RecordBatchReader.from_batches(typed, _cast_batches(reader, typed))


def _cast_batches(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The reader's batches cast to ``schema``; the reader is closed when they stop, even midway."""
    with reader:
        for batch in reader:
            yield batch.cast(schema)


def _prepare(
    con: duckdb.DuckDBPyConnection,
    *,
    has_existing: bool,
    id_column: str,
    scd2: bool,
    now: datetime,
    overrides: Mapping[str, Any] | None,
) -> tuple[list[str], Projection, int, bool]:
    """The view ``ex``: the stored rows (``ex_raw``, when registered) plus the unknown member when
    it is missing; the incoming columns, how a stored column is read, the highest id, and
    whether the unknown member had to be added back."""
    incoming_schema = con.sql("SELECT * FROM inc LIMIT 0").to_arrow_table().schema
    unknown = unknown_member(incoming_schema, id_column=id_column, scd2=scd2, now=now, overrides=overrides)
    con.register("unk", unknown)
    restored = True
    if not has_existing:
        con.execute("CREATE OR REPLACE TEMP VIEW ex AS SELECT * FROM unk")
    else:
        required = [id_column, *(SCD2_SYSTEM if scd2 else SCD1_SYSTEM)]
        missing = [c for c in required if c not in column_types(con, "ex_raw")]
        if missing:
            raise CuratedError(
                f"the existing table lacks {', '.join(missing)} (was the write pattern changed?); set recreate: true"
            )
        has_unknown = con.execute(f"SELECT count(*) FROM ex_raw WHERE {q(id_column)} = {UNKNOWN_ID}").fetchall()[0][0]
        # The unknown member is never removed; should it have gone missing (hand edits), it comes back.
        restored = not has_unknown
        tail = " UNION ALL BY NAME SELECT * FROM unk" if restored else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW ex AS SELECT * FROM ex_raw{tail}")
    columns = list(incoming_schema.names)
    proj = Projection(column_types(con, "inc"), set(column_types(con, "ex")))
    max_id = con.execute(f"SELECT coalesce(max({q(id_column)}), 0) FROM ex").fetchall()[0][0]
    return columns, proj, max(int(max_id), 0), restored


def _merged(
    plan_step: Callable[..., MergePlan], existing: pa.Table | None, incoming: pa.Table, *, scd2: bool, **options: Any
) -> MergeOutcome:
    """Arrow in, Arrow out: run a merge plan over in-memory tables (small dimensions, tests)."""
    con = new_database()
    try:
        con.register("inc", incoming)
        if existing is not None:
            con.register("ex_raw", existing)
        plan = plan_step(con, has_existing=existing is not None, **options)
        ordered = f"SELECT * FROM ({plan.query}) ORDER BY 1"
        table = con.sql(ordered, params=_bind(ordered, plan.params)).to_arrow_table()
    finally:
        con.close()
    return MergeOutcome(table.cast(typed_schema(table.schema, scd2=scd2)), plan.inserted, plan.updated, plan.deleted)


def merge_scd1(existing: pa.Table | None, incoming: pa.Table, **options: Any) -> MergeOutcome:
    """:func:`plan_scd1` over Arrow tables: the merged dimension as a table."""
    return _merged(plan_scd1, existing, incoming, scd2=False, **options)


def merge_scd2(existing: pa.Table | None, incoming: pa.Table, **options: Any) -> MergeOutcome:
    """:func:`plan_scd2` over Arrow tables: the merged dimension as a table."""
    return _merged(plan_scd2, existing, incoming, scd2=True, **options)


def plan_scd1(
    con: duckdb.DuckDBPyConnection,
    *,
    has_existing: bool,
    id_column: str,
    business_key: str,
    full_load: bool,
    now: datetime,
    unknown_overrides: Mapping[str, Any] | None = None,
) -> MergePlan:
    """Overwrite changed attributes in place; new keys get new ids; vanished keys soft-deleted on full loads."""
    columns, proj, max_id, restored = _prepare(
        con, has_existing=has_existing, id_column=id_column, scd2=False, now=now, overrides=unknown_overrides
    )
    bk, idc = q(business_key), q(id_column)
    attrs = [c for c in columns if c != business_key]
    diff = " OR ".join(f"i.{q(c)} IS DISTINCT FROM {proj(c)}" for c in attrs) or "false"
    _execute(con,
        f"""CREATE OR REPLACE TEMP TABLE j AS
        SELECT i.*, e.{idc} AS __id, e.lh_created_date AS __created, e.lh_modified_date AS __modified,
               CASE WHEN e.{idc} IS NULL THEN 'new'
                    WHEN e.lh_is_deleted OR e.lh_is_inferred OR ({diff}) THEN 'change'
                    ELSE 'same' END AS __action
        FROM inc i LEFT JOIN ex e ON e.{idc} <> {UNKNOWN_ID} AND i.{bk} = {proj(business_key)}"""
    )
    cols = ", ".join(q(c) for c in columns)
    ex_cols = ", ".join(f"{proj(c)} AS {q(c)}" for c in columns)
    gone = f"($full AND e.{idc} <> {UNKNOWN_ID} AND NOT e.lh_is_deleted AND NOT e.lh_is_inferred)"
    query = f"""
        SELECT CAST(__id AS BIGINT) AS {idc}, {cols}, false AS lh_is_deleted, false AS lh_is_inferred,
               __created AS lh_created_date,
               CASE WHEN __action = 'same' THEN __modified ELSE $now END AS lh_modified_date
        FROM j WHERE __action <> 'new'
        UNION ALL
        SELECT CAST($max_id AS BIGINT) + row_number() OVER (ORDER BY {bk}), {cols}, false, false, $now, $now
        FROM j WHERE __action = 'new'
        UNION ALL
        SELECT e.{idc}, {ex_cols}, e.lh_is_deleted OR {gone}, e.lh_is_inferred, e.lh_created_date,
               CASE WHEN {gone} THEN $now ELSE e.lh_modified_date END
        FROM ex e WHERE NOT EXISTS (SELECT 1 FROM j WHERE j.__id = e.{idc})"""
    counts = _execute(con,
        f"""SELECT count_if(__action = 'new'), count_if(__action = 'change'),
                   (SELECT count(*) FROM ex e WHERE {gone} AND NOT EXISTS (SELECT 1 FROM j WHERE j.__id = e.{idc}))
            FROM j""",
        {"full": full_load},
    ).fetchall()[0]
    params = {"now": now, "full": full_load, "max_id": max_id}
    return MergePlan(query, params, int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0), restored)


def plan_scd2(
    con: duckdb.DuckDBPyConnection,
    *,
    has_existing: bool,
    id_column: str,
    business_key: str,
    full_load: bool,
    now: datetime,
    valid_from_column: str | None = None,
    first_valid_from: datetime | None = LOW_DATE,
    unknown_overrides: Mapping[str, Any] | None = None,
) -> MergePlan:
    """Close the current version of changed keys and open a new one with its own id.

    A new version starts at ``valid_from_column`` (or ``now``), never before the version it
    closes; the closed one ends one microsecond earlier. A key's first version starts at
    ``first_valid_from`` when set. An inferred member is filled in place (same id, same validity).
    A full load closes vanished keys and opens a deleted version valid from ``now``.
    """
    if valid_from_column is not None and valid_from_column not in column_types(con, "inc"):
        raise CuratedError(f"valid_from_column {valid_from_column!r} is not a column of the SQL result")
    columns, proj, max_id, restored = _prepare(
        con, has_existing=has_existing, id_column=id_column, scd2=True, now=now, overrides=unknown_overrides
    )
    params = {"now": now, "full": full_load, "max_id": max_id, "first": first_valid_from, "high": OPEN_END}
    keys = _Scd2Columns(columns=columns, proj=proj, id_column=id_column, business_key=business_key)
    _execute(con, _classify_incoming_sql(keys, valid_from_column), params)
    _execute(con, _vanished_keys_sql(keys), params)
    _execute(con, _closing_versions_sql(keys), params)
    counts = con.execute(
        "SELECT count_if(__action = 'new'), count_if(__action IN ('change', 'fill')), (SELECT count(*) FROM gone) FROM j"
    ).fetchall()[0]
    return MergePlan(_scd2_versions_sql(keys), params, int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0), restored)


@dataclass(frozen=True)
class _Scd2Columns:
    """What the SCD2 merge's statements are written over: the data columns, how a stored column
    is read (``proj``), the surrogate id and the business key."""

    columns: list[str]
    proj: Callable[..., str]
    id_column: str
    business_key: str


def _classify_incoming_sql(keys: _Scd2Columns, valid_from_column: str | None) -> str:
    """Each incoming row with the key's current version and its action: new, fill (an inferred
    member), change (content differs or the key was deleted) or same; ``__cvf`` is when a new
    version of it would start."""
    bk, idc = q(keys.business_key), q(keys.id_column)
    attrs = [c for c in keys.columns if c not in (keys.business_key, valid_from_column)]
    diff = " OR ".join(f"i.{q(c)} IS DISTINCT FROM {keys.proj(c)}" for c in attrs) or "false"
    candidate = f"coalesce(CAST(i.{q(valid_from_column)} AS TIMESTAMP), $now)" if valid_from_column else "$now"
    return f"""CREATE OR REPLACE TEMP TABLE j AS
        SELECT i.*, e.{idc} AS __oid, e.lh_valid_from AS __ovf, e.lh_created_date AS __ocreated,
               CASE WHEN e.{idc} IS NULL THEN 'new'
                    WHEN e.lh_is_inferred THEN 'fill'
                    WHEN e.lh_is_deleted OR ({diff}) THEN 'change'
                    ELSE 'same' END AS __action,
               {candidate} AS __cvf
        FROM inc i LEFT JOIN ex e ON e.{idc} <> {UNKNOWN_ID} AND e.lh_is_current AND i.{bk} = {keys.proj(keys.business_key)}"""


def _vanished_keys_sql(keys: _Scd2Columns) -> str:
    """On a full load, the current, live, non-inferred versions whose key the SQL no longer returns."""
    bk, idc = q(keys.business_key), q(keys.id_column)
    return f"""CREATE OR REPLACE TEMP TABLE gone AS SELECT e.* FROM ex e
        WHERE $full AND e.{idc} <> {UNKNOWN_ID} AND e.lh_is_current AND NOT e.lh_is_deleted AND NOT e.lh_is_inferred
          AND NOT EXISTS (SELECT 1 FROM inc i WHERE i.{bk} = {keys.proj(keys.business_key)})"""


def _closing_versions_sql(keys: _Scd2Columns) -> str:
    """The versions to close and where their successor starts (never before the closed one)."""
    return f"""CREATE OR REPLACE TEMP TABLE closes AS
        SELECT __oid AS id, greatest(__cvf, __ovf + INTERVAL 1 MICROSECOND) AS new_vf FROM j WHERE __action = 'change'
        UNION ALL
        SELECT {q(keys.id_column)}, greatest($now, lh_valid_from + INTERVAL 1 MICROSECOND) FROM gone"""


def _scd2_versions_sql(keys: _Scd2Columns) -> str:
    """Every version after the merge: stored ones (closed where a successor starts), inferred
    members filled in place, and new versions with new ids (deleted ones for vanished keys)."""
    columns, proj = keys.columns, keys.proj
    bk, idc = q(keys.business_key), q(keys.id_column)
    cols = ", ".join(q(c) for c in columns)
    ex_cols = ", ".join(f"{proj(c)} AS {q(c)}" for c in columns)
    gone_cols = ", ".join(f"{proj(c, 'g')} AS {q(c)}" for c in columns)
    return f"""
        SELECT e.{idc}, {ex_cols}, e.lh_is_deleted, e.lh_is_inferred, e.lh_created_date,
               CASE WHEN c.id IS NULL THEN e.lh_modified_date ELSE $now END AS lh_modified_date,
               e.lh_valid_from,
               CASE WHEN c.id IS NULL THEN e.lh_valid_to ELSE c.new_vf - INTERVAL 1 MICROSECOND END AS lh_valid_to,
               e.lh_is_current AND c.id IS NULL AS lh_is_current
        FROM ex e LEFT JOIN closes c ON c.id = e.{idc}
        WHERE e.{idc} NOT IN (SELECT __oid FROM j WHERE __action = 'fill')
        UNION ALL
        SELECT __oid, {cols}, false, false, __ocreated, $now, __ovf, $high, true FROM j WHERE __action = 'fill'
        UNION ALL
        SELECT CAST($max_id AS BIGINT) + row_number() OVER (ORDER BY {bk}, __vf), {cols},
               __del, false, $now, $now, __vf, $high, true
        FROM (
            SELECT {cols}, false AS __del,
                   CASE WHEN __action = 'new' THEN coalesce(CAST($first AS TIMESTAMP), __cvf)
                        ELSE greatest(__cvf, __ovf + INTERVAL 1 MICROSECOND) END AS __vf
            FROM j WHERE __action IN ('new', 'change')
            UNION ALL
            SELECT {gone_cols}, true, greatest($now, g.lh_valid_from + INTERVAL 1 MICROSECOND) FROM gone g
        ) n"""


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    return con.execute(sql, _bind(sql, params or {}))


def _bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Only the named parameters the statement uses (DuckDB rejects extra ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def typed_schema(schema: pa.Schema, *, scd2: bool) -> pa.Schema:
    """The dimension's types: an int64 id first, the system columns as :func:`system_schema` has them."""
    system = {f.name: f for f in system_schema(scd2)}
    fields = [pa.field(f.name, pa.int64()) if i == 0 else system.get(f.name, f) for i, f in enumerate(schema)]
    return pa.schema(fields)


@budgeted(lambda meta, *args, **kwargs: f"table {meta.table!r}")
def load_dimension(meta: DimensionMeta, data_dir: LakeRoot, *, now: datetime | None = None) -> LoadOutcome:
    """Run the dimension's SQL and merge it into ``<data_dir>/curated/dim_<name>`` (one commit).

    The SQL's result stays in DuckDB (spilling past its limit), the stored table is read as a lazy
    scan, and the merged rows stream into the new Delta version: no step holds the dimension."""
    now = now or utc_now()
    path = curated_path(data_dir, meta.table)
    source = str(meta.sql_path)
    refs = parse_select(meta.sql, source=source)
    with table_lock(data_dir, meta.table), sandbox(data_dir, refs, source=source, also_reads=[path]) as con:
        select_into(con, meta.sql, "inc", source=source)
        check_incoming(con, id_column=meta.id_column, business_key=meta.business_key, source=source)
        (rows_read,) = con.execute("SELECT count(*) FROM inc").fetchall()[0]
        existing = None if meta.spec.recreate or not is_delta_table(path) else open_delta(path)
        if existing is not None:
            register_delta(con, "ex_raw", existing)
        try:
            plan = _plan(meta, con, has_existing=existing is not None, now=now)
        except CuratedError as exc:
            raise CuratedError(f"{source}: {meta.table}: {exc}") from None
        rows = plan.rows(con, scd2=meta.is_scd2)
        unchanged = existing is not None and not plan.changed and _same_schema(existing, rows.schema)
        try:
            if not unchanged:
                write_reader(rows, path, mode="overwrite", schema_mode="overwrite")
        finally:
            rows.close()  # the connection refuses to close under a stream a failed writer left open
    return finish(
        meta.table,
        path,
        write_pattern=meta.spec.write_pattern,
        rows_read=int(rows_read),
        inserted=plan.inserted,
        updated=plan.updated,
        soft_deleted=plan.deleted,
        written=[] if unchanged else [meta.table],
    )


def _plan(meta: DimensionMeta, con: duckdb.DuckDBPyConnection, *, has_existing: bool, now: datetime) -> MergePlan:
    options: dict[str, Any] = dict(
        has_existing=has_existing,
        id_column=meta.id_column,
        business_key=meta.business_key,
        full_load=meta.spec.full_load,
        now=now,
        unknown_overrides=meta.spec.unknown_member,
    )
    if meta.is_scd2:
        return plan_scd2(con, valid_from_column=meta.spec.valid_from_column, first_valid_from=meta.spec.first_valid_from, **options)
    return plan_scd1(con, **options)


def _same_schema(table: DeltaTable, schema: pa.Schema) -> bool:
    """The stored table has these columns with these types (an unchanged merge then writes nothing)."""
    stored = pa.schema(table.schema().to_arrow())
    plain = [(f.name, f.type) for f in plain_schema(schema)]
    return [(f.name, f.type) for f in plain_schema(stored)] == plain
