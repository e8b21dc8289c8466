"""Landing files staged in DuckDB: a load's extracts live in tables of the process's DuckDB
database, never whole in Python or Arrow.

A landing file streams in batches (``reader.landing_batches``) through the row-by-row part of the
preparation (``reader.prepare_batch``) into one table; the checks across rows (keys with
differing rows, repeated keys) then run as SQL on it. Past the memory budget DuckDB spills those
tables to the spill folder (see ``engine/memory.py``). Only a table with a Python
``transformation`` is prepared whole in Arrow first (the transformation is given the whole file),
then staged the same way. :func:`drop_staged` frees a load's tables when it ends.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.base.reader import (
    AMBIGUOUS_KEY_RULE,
    DELETE_FLAG,
    Extract,
    keeps_delete_column,
    landing_batches,
    landing_relation,
    lineage_name,
    prepare,
    prepare_batch,
    read_landing_file,
)
from medallion_assets.engine.base.schema import BaseLoadError, align
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import to_snake_case
from medallion_assets.engine.storage.lake import LakeRoot
from medallion_assets.engine.storage.paths import LandingFile
from medallion_assets.engine.storage.scan import connect

_names = itertools.count(1)


@dataclass(frozen=True)
class StagedRows:
    """A prepared landing file's rows: ``table`` in the process's DuckDB database (``main`` schema,
    visible to every connection), typed by ``schema``. ``repeated`` names a table of the values of
    the (single) business key that occur on several rows, when known."""

    table: str
    schema: pa.Schema
    num_rows: int
    repeated: str | None = None
    owned: tuple[str, ...] = field(default=())  # tables and views to drop with it

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)


def _new_name(kind: str) -> str:
    return f"staged_{kind}_{os.getpid()}_{next(_names)}"


def read_extract(meta: BaseTable, landing: LandingFile, data_dir: LakeRoot) -> Extract:
    """Read and prepare one landing file into a staged table (see the module docstring)."""
    where = f"table {meta.name!r}, file {landing.path}"
    fmt = landing.format if landing.format else meta.format
    if meta.transformation:
        raw = read_landing_file(landing.path, fmt, meta.read_options)
        rows, quarantined = prepare(raw, meta, landing.load_type, where)
        staged, read = stage_arrow(rows), raw.num_rows
    else:
        staged, quarantined, read = _stage_file(meta, landing, fmt, where)
    return Extract(
        rows=staged,
        load_type=landing.load_type,
        extracted_at=landing.extracted_at,
        file=lineage_name(landing.path, data_dir),
        rows_read=read,
        quarantine=quarantined,
    )


def stage_arrow(rows: pa.Table | pa.RecordBatchReader, *, keys: Sequence[str] = ()) -> StagedRows:
    """Copy Arrow rows (a table or a stream of batches) into a staged table."""
    name = _new_name("rows")
    con = connect()
    try:
        con.register("incoming", rows)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
        con.unregister("incoming")
        return _describe(con, name, keys=keys)
    finally:
        con.close()


def _describe(con: duckdb.DuckDBPyConnection, name: str, *, keys: Sequence[str] = (), owned: tuple[str, ...] = ()) -> StagedRows:
    schema = con.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
    (count,) = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0]
    repeated = None
    if len(keys) == 1 and keys[0] in schema.names:
        repeated = _new_name("repeated")
        con.execute(f"CREATE TABLE {repeated} AS SELECT {q(keys[0])} FROM {name} GROUP BY ALL HAVING count(*) > 1")
    return StagedRows(table=name, schema=schema, num_rows=count, repeated=repeated, owned=(name, *owned, *([repeated] if repeated else [])))


class _Batches:
    """The prepared batches of a file, counting rows read and keeping quarantined rows; an error
    while DuckDB pulls them is kept and raised again by :meth:`reraise` with its own type."""

    def __init__(self, batches: Iterator[pa.Table], meta: BaseTable, load_type: str, where: str, schema: pa.Schema) -> None:
        self.batches, self.meta, self.load_type, self.where, self.schema = batches, meta, load_type, where, schema
        self.read = 0
        self.quarantine: list[pa.Table] = []
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for raw in self.batches:
                rows, quarantined = prepare_batch(raw, self.meta, self.load_type, self.where, first_row=self.read + 1)
                self.read += raw.num_rows
                if quarantined is not None:
                    self.quarantine.append(quarantined)
                yield from (rows if rows.schema == self.schema else rows.cast(self.schema)).to_batches()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, not swallowed
            self.error = exc

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


# DuckDB types that come back from Arrow as themselves: a file of only these can be staged
# straight from DuckDB's reader (the batch path would give the same table).
_PLAIN_TYPES = re.compile(
    r"(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\)|VARCHAR|DATE|TIMESTAMP|BLOB)"
)


def _stage_with_sql(meta: BaseTable, landing: LandingFile, fmt: str, where: str, name: str) -> int | None:
    """The preparation as one DuckDB statement from the file, when it is only renames, casts, a
    projection and key checks (no rules, delete condition or transformation) over plain types:
    no batch passes through Python. Returns the rows read, or None when the batch path must run
    (which also gives any error its exact message and row number)."""
    if meta.transformation or meta.quality_rules or meta.delete_condition is not None:
        return None
    con = connect()
    try:
        try:
            relation = landing_relation(con, landing.path, fmt, meta.read_options)
            if relation is None:
                return None
            types = [str(t) for t in relation.types]
            proto = relation.limit(0).to_arrow_table()
        except (duckdb.Error, BaseLoadError):
            return None
        if not all(_PLAIN_TYPES.fullmatch(t) for t in types):
            return None
        out = prepare_batch(proto, meta, landing.load_type, where)[0]  # raises what the batch path raises
        shaped = _shape_names(meta, list(relation.columns))
        select = ", ".join(_source_expression(meta, shaped[c], c) for c in out.column_names)
        try:
            relation.project(select).create(name)
        except duckdb.Error:
            con.execute(f"DROP TABLE IF EXISTS {name}")
            return None
        keys = meta.business_keys if (meta.keyed or landing.load_type == "keys") else []
        nulls = " OR ".join(f"{q(k)} IS NULL" for k in keys)
        stored = [t for _, t in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {name})").fetchall()]
        if (nulls and con.execute(f"SELECT count(*) FROM {name} WHERE {nulls}").fetchall()[0][0]) or not all(
            _PLAIN_TYPES.fullmatch(t) for t in stored
        ):
            con.execute(f"DROP TABLE {name}")
            return None
        return con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    finally:
        con.close()


def _shape_names(meta: BaseTable, raw: list[str]) -> dict[str, str]:
    """Each prepared column name and the file's column it comes from (translations, snake_case)."""
    out = {}
    for column in raw:
        out[to_snake_case(meta.translations.get(column, column))] = column
    return out


def _source_expression(meta: BaseTable, source: str, column: str) -> str:
    if column in meta.column_types:
        return f"CAST({q(source)} AS {meta.column_types[column]}) AS {q(column)}"
    return f"{q(source)} AS {q(column)}"


def _stage_file(meta: BaseTable, landing: LandingFile, fmt: str, where: str) -> tuple[StagedRows, pa.Table | None, int]:
    name = _new_name("rows")
    read = _stage_with_sql(meta, landing, fmt, where, name)
    if read is not None:
        aside: list[pa.Table] = []
        staged = _finish_staging(meta, landing, name, aside)
        return staged, (pa.concat_tables(aside, promote_options="permissive") if aside else None), read
    with landing_batches(landing.path, fmt, meta.read_options) as (schema, batches):
        proto, _ = prepare_batch(schema.empty_table(), meta, landing.load_type, where)
        prepared = _Batches(batches, meta, landing.load_type, where, proto.schema)
        con = connect()
        try:
            con.register("incoming", pa.RecordBatchReader.from_batches(proto.schema, iter(prepared)))
            try:
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            except duckdb.Error:
                prepared.reraise()
                raise
            prepared.reraise()
            con.unregister("incoming")
        except BaseException:
            con.execute(f"DROP TABLE IF EXISTS {name}")
            raise
        finally:
            con.close()
    staged = _finish_staging(meta, landing, name, prepared.quarantine)
    quarantine = pa.concat_tables(prepared.quarantine, promote_options="permissive") if prepared.quarantine else None
    return staged, quarantine, prepared.read


def _finish_staging(meta: BaseTable, landing: LandingFile, name: str, quarantine: list[pa.Table]) -> StagedRows:
    """The checks across rows on a staged file: repeated keys listed, ambiguous keys set aside
    (appended to ``quarantine``), the delete condition's column dropped once the flag is set."""
    con = connect()
    try:
        keys = meta.business_keys if meta.keyed and landing.load_type != "keys" else ()
        staged = _describe(con, name, keys=keys)
        if keys:
            staged, ambiguous = _set_aside_ambiguous(con, staged, meta)
            if ambiguous is not None:
                quarantine.append(ambiguous)
        if keeps_delete_column(meta) and landing.load_type != "keys":
            column = meta.delete_condition.column
            con.execute(f"ALTER TABLE {name} DROP COLUMN {q(column)}")
            kept = pa.schema([f for f in staged.schema if f.name != column])
            staged = StagedRows(name, kept, staged.num_rows, staged.repeated, staged.owned)
        return staged
    except BaseException:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        raise
    finally:
        con.close()


def _set_aside_ambiguous(con: duckdb.DuckDBPyConnection, staged: StagedRows, meta: BaseTable) -> tuple[StagedRows, pa.Table | None]:
    """Rows of one key that differ while nothing orders them (same or no modify date) cannot be
    merged without guessing which is right: they go to quarantine, not silently one of them.
    Only keys on several rows can be ambiguous, so only those keys' rows are grouped."""
    if staged.repeated is not None:
        (count,) = con.execute(f"SELECT count(*) FROM {staged.repeated}").fetchall()[0]
        if not count:
            return staged, None
    group = [*meta.business_keys, *([meta.modify_date_column] if meta.modify_date_column else [])]
    data = [c for c in staged.column_names if c != DELETE_FLAG]
    row_hash = f"hash({', '.join(q(c) for c in data)})"
    rows = staged.table
    if staged.repeated is not None:
        rows = f"(SELECT * FROM {staged.table} SEMI JOIN {staged.repeated} USING ({q(meta.business_keys[0])}))"
    groups = ", ".join(q(c) for c in group)
    on = " AND ".join(f"r.{q(c)} IS NOT DISTINCT FROM a.{q(c)}" for c in group)
    ambiguous = _new_name("ambiguous")
    con.execute(f"CREATE TEMP TABLE {ambiguous} AS SELECT {groups} FROM {rows} GROUP BY ALL HAVING min({row_hash}) <> max({row_hash})")
    try:
        (count,) = con.execute(f"SELECT count(*) FROM {ambiguous}").fetchall()[0]
        if not count:
            return staged, None
        columns = ", ".join(f"r.{q(c)}" for c in data)
        quarantined = con.sql(
            f"SELECT {columns}, '{AMBIGUOUS_KEY_RULE}' AS lh_quarantine_rules FROM {staged.table} r SEMI JOIN {ambiguous} a ON {on}"
        ).to_arrow_table()
        kept = _new_name("rows")
        con.execute(f"CREATE TABLE {kept} AS SELECT r.* FROM {staged.table} r ANTI JOIN {ambiguous} a ON {on}")
        con.execute(f"DROP TABLE {staged.table}")
        con.execute(f"ALTER TABLE {kept} RENAME TO {staged.table}")
        (left,) = con.execute(f"SELECT count(*) FROM {staged.table}").fetchall()[0]
        return StagedRows(staged.table, staged.schema, left, staged.repeated, staged.owned), quarantined
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ambiguous}")


def align_staged(rows: StagedRows, target: pa.Schema, *, text_format: bool, where: str) -> StagedRows:
    """:func:`schema.align` for staged rows: shared columns take the stored type, stored columns
    the file lacks come as nulls, new columns stay at the end. Renaming and nulls are a view; a
    type change streams the rows once through ``align`` (its checks and messages) into a new table."""
    if target is None:
        return rows
    changed = [f.name for f in target if f.name in rows.schema.names and rows.schema.field(f.name).type != f.type]
    con = connect()
    try:
        if changed:
            source = connect()  # one connection reads while the other writes
            reader = source.sql(f"SELECT * FROM {rows.table}").to_arrow_reader(1 << 17)
            aligned_schema = align(rows.schema.empty_table(), target, text_format=text_format, where=where).schema
            batches = (
                part
                for batch in reader
                for part in align(pa.Table.from_batches([batch]), target, text_format=text_format, where=where).to_batches()
            )
            holder = _Holder(batches)
            name = _new_name("aligned")
            con.register("incoming", pa.RecordBatchReader.from_batches(aligned_schema, iter(holder)))
            try:
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            except duckdb.Error:
                holder.reraise()
                raise
            finally:
                source.close()
            holder.reraise()
            return StagedRows(name, aligned_schema, rows.num_rows, rows.repeated, (*rows.owned, name))
        con.register("target_proto", target.empty_table())
        order = [f.name for f in target] + [c for c in rows.schema.names if c not in target.names]
        if order == rows.schema.names:
            return rows
        # DuckDB's names of the stored types, for the typed nulls of the columns the file lacks.
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM target_proto)").fetchall())
        select = [q(c) if c in rows.schema.names else f"CAST(NULL AS {types[c]}) AS {q(c)}" for c in order]
        name = _new_name("aligned")
        con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(select)} FROM {rows.table}")
        schema = con.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
        return StagedRows(name, schema, rows.num_rows, rows.repeated, (*rows.owned, name))
    finally:
        con.close()


class _Holder:
    """Batches whose error, raised while DuckDB pulls them, is kept and raised again as itself."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self.batches, self.error = batches, None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.batches
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, not swallowed
            self.error = exc

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


def select_staged(rows: StagedRows, columns: Sequence[str]) -> StagedRows:
    """A view of some columns (a keys extract's key columns)."""
    name = _new_name("columns")
    con = connect()
    try:
        con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(q(c) for c in columns)} FROM {rows.table}")
        return StagedRows(name, pa.schema([rows.schema.field(c) for c in columns]), rows.num_rows, rows.repeated, (*rows.owned, name))
    finally:
        con.close()


def drop_staged(extracts: Sequence[Extract | StagedRows]) -> None:
    """Free the staged tables and views of a load (views first)."""
    owned: list[str] = []
    for item in extracts:
        rows = item.rows if isinstance(item, Extract) else item
        if isinstance(rows, StagedRows):
            owned += [n for n in rows.owned if n not in owned]
    if not owned:
        return
    con = connect()
    try:
        views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        for name in reversed(owned):  # views before the tables they read
            con.execute(f"DROP {'VIEW' if name in views else 'TABLE'} IF EXISTS {name}")
    finally:
        con.close()
