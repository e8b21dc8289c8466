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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.history import OPEN_END
from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.model import DimensionMeta
from medallion_assets.engine.curated.sql import check_identifier, q, run_select
from medallion_assets.engine.curated.tables import (
    LOW_DATE,
    TS,
    UNKNOWN_ID,
    curated_path,
    default_for,
    finish,
    read_delta,
    table_lock,
)
from medallion_assets.engine.memory import budgeted, new_database
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.storage.lake import LakeRoot, write_delta

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


def check_incoming(incoming: pa.Table, *, id_column: str, business_key: str, source: str) -> None:
    """Column names, the business key present, not null and unique (else fail before any write)."""
    for name in incoming.column_names:
        try:
            check_identifier(name)
        except CuratedError:
            raise CuratedError(f"{source}: result column {name!r} is not lower snake_case; give it an alias") from None
        if name == id_column or name.startswith("lh_"):
            raise CuratedError(f"{source}: result column {name!r} is reserved for the dimension; rename it")
    if len(set(incoming.column_names)) != incoming.num_columns:
        raise CuratedError(f"{source}: the SQL returns a column name twice: {incoming.column_names}")
    if business_key not in incoming.column_names:
        raise CuratedError(f"{source}: the SQL must return the business key column {business_key!r}")
    con = new_database()
    try:
        con.register("inc", incoming)
        nulls = con.execute(f"SELECT count(*) FROM inc WHERE {q(business_key)} IS NULL").fetchall()[0][0]
        if nulls:
            raise CuratedError(f"{source}: {nulls} row(s) have a null business key {business_key}; the table was left untouched")
        dup = con.execute(
            f"SELECT {q(business_key)}, count(*) FROM inc GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchall()
        dup = dup[0] if dup else None
        if dup is not None:
            raise CuratedError(
                f"{source}: duplicate business key {business_key} = {dup[0]!r} ({dup[1]} rows); "
                "the table was left untouched"
            )
    finally:
        con.close()


@dataclass(frozen=True)
class Projection:
    """Existing columns cast to the incoming types; columns new to the SQL are NULL in old rows."""

    types: dict[str, str]
    existing: set[str]

    def __call__(self, column: str, alias: str = "e") -> str:
        if column in self.existing:
            return f"CAST({alias}.{q(column)} AS {self.types[column]})"
        return f"CAST(NULL AS {self.types[column]})"


def _prepare(
    con: duckdb.DuckDBPyConnection,
    existing: pa.Table | None,
    incoming: pa.Table,
    *,
    id_column: str,
    scd2: bool,
    now: datetime,
    overrides: Mapping[str, Any] | None,
) -> tuple[list[str], Projection, int]:
    """Register ``inc`` and ``ex`` (existing rows plus the unknown member); projections of ``ex``."""
    con.register("inc", incoming)
    unknown = unknown_member(incoming.schema, id_column=id_column, scd2=scd2, now=now, overrides=overrides)
    con.register("unk", unknown)
    if existing is None:
        con.execute("CREATE TEMP VIEW ex AS SELECT * FROM unk")
    else:
        required = [id_column, *(SCD2_SYSTEM if scd2 else SCD1_SYSTEM)]
        missing = [c for c in required if c not in existing.column_names]
        if missing:
            raise CuratedError(
                f"the existing table lacks {', '.join(missing)} (was the write pattern changed?); set recreate: true"
            )
        con.register("ex_raw", existing)
        has_unknown = con.execute(f"SELECT count(*) FROM ex_raw WHERE {q(id_column)} = {UNKNOWN_ID}").fetchall()[0][0]
        # The unknown member is never removed; should it have gone missing (hand edits), it comes back.
        tail = "" if has_unknown else " UNION ALL BY NAME SELECT * FROM unk"
        con.execute(f"CREATE TEMP VIEW ex AS SELECT * FROM ex_raw{tail}")
    columns = list(incoming.column_names)
    types = {row[0]: row[1] for row in con.execute("DESCRIBE SELECT * FROM inc").fetchall()}
    existing_columns = {row[0] for row in con.execute("DESCRIBE SELECT * FROM ex").fetchall()}
    proj = Projection(types, existing_columns)
    max_id = con.execute(f"SELECT coalesce(max({q(id_column)}), 0) FROM ex").fetchall()[0][0]
    return columns, proj, max(int(max_id), 0)


def merge_scd1(
    existing: pa.Table | None,
    incoming: pa.Table,
    *,
    id_column: str,
    business_key: str,
    full_load: bool,
    now: datetime,
    unknown_overrides: Mapping[str, Any] | None = None,
) -> MergeOutcome:
    """Overwrite changed attributes in place; new keys get new ids; vanished keys soft-deleted on full loads."""
    con = new_database()
    try:
        columns, proj, max_id = _prepare(
            con, existing, incoming, id_column=id_column, scd2=False, now=now, overrides=unknown_overrides
        )
        bk, idc = q(business_key), q(id_column)
        attrs = [c for c in columns if c != business_key]
        diff = " OR ".join(f"i.{q(c)} IS DISTINCT FROM {proj(c)}" for c in attrs) or "false"
        _execute(con,
            f"""CREATE TEMP TABLE j AS
            SELECT i.*, e.{idc} AS __id, e.lh_created_date AS __created, e.lh_modified_date AS __modified,
                   CASE WHEN e.{idc} IS NULL THEN 'new'
                        WHEN e.lh_is_deleted OR e.lh_is_inferred OR ({diff}) THEN 'change'
                        ELSE 'same' END AS __action
            FROM inc i LEFT JOIN ex e ON e.{idc} <> {UNKNOWN_ID} AND i.{bk} = {proj(business_key)}"""
        )
        cols = ", ".join(q(c) for c in columns)
        ex_cols = ", ".join(f"{proj(c)} AS {q(c)}" for c in columns)
        gone = f"($full AND e.{idc} <> {UNKNOWN_ID} AND NOT e.lh_is_deleted AND NOT e.lh_is_inferred)"
        params = {"now": now, "full": full_load, "max_id": max_id}
        result = _arrow(con,
            f"""
            SELECT CASE WHEN __action = 'new'
                        THEN CAST($max_id AS BIGINT) + row_number() OVER (PARTITION BY __action = 'new' ORDER BY {bk})
                        ELSE __id END AS {idc},
                   {cols}, false AS lh_is_deleted, false AS lh_is_inferred,
                   coalesce(__created, $now) AS lh_created_date,
                   CASE WHEN __action = 'same' THEN __modified ELSE $now END AS lh_modified_date
            FROM j
            UNION ALL
            SELECT e.{idc}, {ex_cols}, e.lh_is_deleted OR {gone}, e.lh_is_inferred, e.lh_created_date,
                   CASE WHEN {gone} THEN $now ELSE e.lh_modified_date END
            FROM ex e WHERE NOT EXISTS (SELECT 1 FROM j WHERE j.__id = e.{idc})
            ORDER BY 1""",
            params,
        )
        counts = _execute(con,
            f"""SELECT count_if(__action = 'new'), count_if(__action = 'change'),
                       (SELECT count(*) FROM ex e WHERE {gone} AND NOT EXISTS (SELECT 1 FROM j WHERE j.__id = e.{idc}))
                FROM j""",
            {"full": full_load},
        ).fetchall()[0]
    finally:
        con.close()
    return MergeOutcome(_typed(result, scd2=False), int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))


def merge_scd2(
    existing: pa.Table | None,
    incoming: pa.Table,
    *,
    id_column: str,
    business_key: str,
    full_load: bool,
    now: datetime,
    valid_from_column: str | None = None,
    first_valid_from: datetime | None = LOW_DATE,
    unknown_overrides: Mapping[str, Any] | None = None,
) -> MergeOutcome:
    """Close the current version of changed keys and open a new one with its own id.

    A new version starts at ``valid_from_column`` (or ``now``), never before the version it
    closes; the closed one ends one microsecond earlier. A key's first version starts at
    ``first_valid_from`` when set. An inferred member is filled in place (same id, same validity).
    A full load closes vanished keys and opens a deleted version valid from ``now``.
    """
    if valid_from_column is not None and valid_from_column not in incoming.column_names:
        raise CuratedError(f"valid_from_column {valid_from_column!r} is not a column of the SQL result")
    con = new_database()
    try:
        columns, proj, max_id = _prepare(
            con, existing, incoming, id_column=id_column, scd2=True, now=now, overrides=unknown_overrides
        )
        params = {"now": now, "full": full_load, "max_id": max_id, "first": first_valid_from, "high": OPEN_END}
        keys = _Scd2Columns(columns=columns, proj=proj, id_column=id_column, business_key=business_key)
        _execute(con, _classify_incoming_sql(keys, valid_from_column), params)
        _execute(con, _vanished_keys_sql(keys), params)
        _execute(con, _closing_versions_sql(keys), params)
        result = _arrow(con, _scd2_versions_sql(keys), params)
        counts = con.execute(
            "SELECT count_if(__action = 'new'), count_if(__action IN ('change', 'fill')), (SELECT count(*) FROM gone) FROM j"
        ).fetchall()[0]
    finally:
        con.close()
    return MergeOutcome(_typed(result, scd2=True), int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))


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
    return f"""CREATE TEMP TABLE j AS
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
    return f"""CREATE TEMP TABLE gone AS SELECT e.* FROM ex e
        WHERE $full AND e.{idc} <> {UNKNOWN_ID} AND e.lh_is_current AND NOT e.lh_is_deleted AND NOT e.lh_is_inferred
          AND NOT EXISTS (SELECT 1 FROM inc i WHERE i.{bk} = {keys.proj(keys.business_key)})"""


def _closing_versions_sql(keys: _Scd2Columns) -> str:
    """The versions to close and where their successor starts (never before the closed one)."""
    return f"""CREATE TEMP TABLE closes AS
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
        ) n
        ORDER BY 1"""


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    return con.execute(sql, _bind(sql, params or {}))


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> pa.Table:
    return con.sql(sql, params=_bind(sql, params)).to_arrow_table()


def _bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Only the named parameters the statement uses (DuckDB rejects extra ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def _typed(table: pa.Table, *, scd2: bool) -> pa.Table:
    """Fix the system columns' Arrow types (naive microsecond timestamps, int64 id)."""
    fields = []
    system = {f.name: f for f in system_schema(scd2)}
    for index, fld in enumerate(table.schema):
        if index == 0:
            fields.append(pa.field(fld.name, pa.int64()))
        else:
            fields.append(system.get(fld.name, fld))
    return table.cast(pa.schema(fields))


@budgeted(lambda meta, *args, **kwargs: f"table {meta.table!r}")
def load_dimension(meta: DimensionMeta, data_dir: LakeRoot, *, now: datetime | None = None) -> LoadOutcome:
    """Run the dimension's SQL and merge it into ``<data_dir>/curated/dim_<name>`` (one commit)."""
    now = now or utc_now()
    path = curated_path(data_dir, meta.table)
    source = str(meta.sql_path)
    with table_lock(data_dir, meta.table):
        incoming = run_select(meta.sql, data_dir, source=source)
        check_incoming(incoming, id_column=meta.id_column, business_key=meta.business_key, source=source)
        existing = None if meta.spec.recreate else read_delta(path)
        kwargs = dict(
            id_column=meta.id_column,
            business_key=meta.business_key,
            full_load=meta.spec.full_load,
            now=now,
            unknown_overrides=meta.spec.unknown_member,
        )
        try:
            if meta.is_scd2:
                outcome = merge_scd2(
                    existing,
                    incoming,
                    valid_from_column=meta.spec.valid_from_column,
                    first_valid_from=meta.spec.first_valid_from,
                    **kwargs,
                )
            else:
                outcome = merge_scd1(existing, incoming, **kwargs)
        except CuratedError as exc:
            raise CuratedError(f"{source}: {meta.table}: {exc}") from None
        unchanged = (
            existing is not None
            and not outcome.changed
            and existing.schema.equals(outcome.table.schema)
            and existing.num_rows == outcome.table.num_rows
        )
        if not unchanged:
            write_delta(path, outcome.table, mode="overwrite", schema_mode="overwrite")
    return finish(
        meta.table,
        path,
        write_pattern=meta.spec.write_pattern,
        inserted=outcome.inserted,
        updated=outcome.updated,
        soft_deleted=outcome.deleted,
        written=[] if unchanged else [meta.table],
    )
