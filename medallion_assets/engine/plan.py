"""`medallion plan`: what the metadata folder will change in the stored lake, before it runs.

Each curated SQL file is bound by DuckDB against the stored schemas of the tables it reads
(empty relations of those schemas: nothing is read or run), which gives the columns and types
the next load will write, or the binder's error naming the file and the column. These are
compared with the stored table. Base tables are compared with the write behaviour and business
keys of their last load (given by the caller, from the Dagster instance) and with their declared
projection. A type change, a removed column, a changed write behaviour or key is breaking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.curated.keys import resolve_key_columns
from medallion_assets.engine.curated.model import DimensionMeta, FactMeta
from medallion_assets.engine.metadata import MetadataError
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_delta, open_delta

SYSTEM_PREFIX = "lh_"


@dataclass(frozen=True)
class Change:
    what: str  # "table added", "column added", "column removed", "column retyped", "write_behaviour", "business_keys"
    detail: str
    breaking: bool = False


@dataclass(frozen=True)
class TableChanges:
    table: str  # "curated.fact_sale", "base.erp_customer"
    file: str  # the metadata file that declares it
    partitioned: bool
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)


@dataclass(frozen=True)
class MetadataPlan:
    tables: tuple[TableChanges, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> tuple[TableChanges, ...]:
        return tuple(t for t in self.tables if t.changes)


def stored_schema(root: LakeRoot, layer: str, table: str) -> pa.Schema | None:
    """The schema of a stored Delta table (read from its log, no data), or None when absent."""
    path = as_path(root) / layer / table
    return open_delta(path).to_pyarrow_dataset().schema if is_delta(path) else None


def duckdb_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """Each column of an Arrow schema and the DuckDB type it reads as."""
    relation = con.from_arrow(schema.empty_table())
    return dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))


def bind_sql(sql: str, *, file: Path, schemas: Mapping[tuple[str, str], pa.Schema]) -> dict[str, str]:
    """The columns and DuckDB types ``sql`` returns over empty tables of ``schemas``; a column or
    table it names that is not there is a :class:`MetadataError` naming the file."""
    con = duckdb.connect()
    try:
        for schema in {s for s, _ in schemas}:
            con.execute(f"CREATE SCHEMA {q(schema)}")
        for number, ((schema, table), arrow_schema) in enumerate(schemas.items()):
            con.register(f"__empty_{number}", arrow_schema.empty_table())
            con.execute(f"CREATE VIEW {q(schema)}.{q(table)} AS SELECT * FROM __empty_{number}")
        try:
            relation = con.sql(sql)
        except duckdb.Error as exc:
            raise MetadataError(f"{file}: {str(exc).splitlines()[0]}") from None
        return dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    finally:
        con.close()


def plan_curated(meta: DimensionMeta | FactMeta, root: LakeRoot) -> TableChanges:
    """What the next load of a dimension, fact or bridge changes in its stored table."""
    partitioned = isinstance(meta, FactMeta) and meta.is_partitioned
    name, file = f"curated.{meta.table}", str(meta.sql_path)
    schemas = {(r.schema, r.table): stored_schema(root, r.schema, r.table) for r in meta.reads}
    missing = sorted(f"{s}.{t}" for (s, t), v in schemas.items() if v is None)
    if missing:
        return TableChanges(name, file, partitioned, notes=(f"cannot bind yet: {', '.join(missing)} not stored",))
    planned = _written_columns(meta, bind_sql(meta.sql, file=meta.sql_path, schemas=schemas))
    stored = stored_schema(root, "curated", meta.table)
    if stored is None:
        return TableChanges(name, file, partitioned, changes=(Change("table added", f"{len(planned)} columns"),))
    con = duckdb.connect()
    try:
        before = {c: t for c, t in duckdb_types(con, stored).items() if c in planned or not _framework(meta, c)}
    finally:
        con.close()
    return TableChanges(name, file, partitioned, changes=tuple(compare_columns(before, planned)))


def _written_columns(meta: DimensionMeta | FactMeta, columns: dict[str, str]) -> dict[str, str]:
    """The SQL's columns as the load writes them: a fact's mapped ``_key`` columns become their
    surrogate ids (left out here: the framework types them); the calendar's keep their name."""
    if isinstance(meta, DimensionMeta) or not meta.spec.map_keys:
        return columns
    mappings, _ = resolve_key_columns(
        list(columns), meta.dimensions, degenerate=meta.spec.degenerate_keys, source=meta.table, strict=False
    )
    dropped = {m.column for m in mappings if m.target != m.column}
    return {c: t for c, t in columns.items() if c not in dropped}


def _framework(meta: DimensionMeta | FactMeta, column: str) -> bool:
    """Columns the framework adds to a table (system columns, surrogate keys), not the SQL."""
    if column.startswith(SYSTEM_PREFIX):
        return True
    if isinstance(meta, DimensionMeta):
        return column == meta.id_column
    return column.endswith("_id") and meta.spec.map_keys


def compare_columns(before: Mapping[str, str], after: Mapping[str, str]) -> list[Change]:
    """Columns added, removed (breaking) and retyped (breaking) from ``before`` to ``after``."""
    changes = [Change("column added", f"{c} {t}") for c, t in after.items() if c not in before]
    changes += [Change("column removed", f"{c} {t}", breaking=True) for c, t in before.items() if c not in after]
    changes += [
        Change("column retyped", f"{c} {before[c]} -> {t}", breaking=True)
        for c, t in after.items()
        if c in before and before[c] != t
    ]
    return changes


def plan_base(table: BaseTable, root: LakeRoot, *, last_load: Mapping[str, str] | None) -> TableChanges:
    """What the metadata changes for a base table: its write behaviour and business keys against
    its last load, its declared projection against the stored columns."""
    name = f"base.{table.name}"
    stored = stored_schema(root, "base", table.name)
    if stored is None:
        return TableChanges(name, table.file, True, changes=(Change("table added", table.write_behaviour),))
    changes: list[Change] = []
    last = last_load or {}
    if last.get("write_behaviour") and last["write_behaviour"] != table.write_behaviour:
        changes.append(Change("write_behaviour", f"{last['write_behaviour']} -> {table.write_behaviour}", breaking=True))
    keys = ", ".join(table.business_keys) or "-"
    if last.get("business_keys") and last["business_keys"] != keys:
        changes.append(Change("business_keys", f"{last['business_keys']} -> {keys}", breaking=True))
    if table.columns is not None:
        stored_columns = [c for c in stored.names if not c.startswith(SYSTEM_PREFIX)]
        changes += [Change("column added", c) for c in table.columns if c not in stored_columns]
        changes += [Change("column removed", c, breaking=True) for c in stored_columns if c not in table.columns]
    return TableChanges(name, table.file, True, changes=tuple(changes))


def make_plan(
    *, base_tables: Sequence[BaseTable], curated: Sequence[DimensionMeta | FactMeta], root: LakeRoot,
    last_loads: Mapping[str, Mapping[str, str]],
) -> MetadataPlan:
    """The plan of every included base table and every dimension, fact and bridge."""
    tables = [plan_base(t, root, last_load=last_loads.get(t.name)) for t in base_tables if t.include]
    tables += [plan_curated(meta, root) for meta in curated]
    return MetadataPlan(tuple(tables))


def rebuild_command(table: TableChanges, *, first_day: str, last_day: str) -> str:
    """The command that rebuilds a changed table: a backfill of the daily job over the stored
    days for a partitioned table, one materialization for the others."""
    if table.partitioned:
        return (
            f"dagster job backfill -w workspace.yaml -j medallion_daily --from {first_day} --to {last_day} --noprompt"
        )
    asset = table.table.replace(".", "/")
    return f"dagster asset materialize -m medallion_assets.definitions --select {asset}"
