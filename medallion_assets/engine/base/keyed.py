"""The keyed (scd1 / scd2) path of a Base load.

``history.stage_plan`` folds the batch into the table's observations (``base/_state/<table>``) and
returns the recomputed rows of the affected keys; ``_diff`` compares them with what the table
holds; ``_commit_keyed`` writes the difference (the table first, then the observations, see
``load.py``). Rows are written in key order and a day's changes replace only the key ranges they
touch instead of rewriting the table. deltalake spreads a write over one writer per core, so each
file's rows are in key order but files' key ranges overlap (2 cores: a file spans about twice
its share of the keys); a change then rewrites the files whose range it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, Schema

from medallion_assets.engine.base import history
from medallion_assets.engine.base.history import HistorySpec
from medallion_assets.engine.base.model import BaseTable, state_path, table_path
from medallion_assets.engine.base.reader import Extract
from medallion_assets.engine.base.schema import BaseLoadError, align
from medallion_assets.engine.base.staging import drop_staged, read_extract
from medallion_assets.engine.outcome import WriteCounts
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import timestamp_literal
from medallion_assets.engine.storage.delta_copy import (
    files_holding,
    is_local,
    local_root,
    merge_rows,
    plain_schema,
    write_query,
)
from medallion_assets.engine.storage.lake import LakeRoot, compact, open_delta
from medallion_assets.engine.storage.paths import inside, parse_landing_file
from medallion_assets.engine.storage.scan import connect, native_files, register_delta, stream

SYSTEM_KEYED = ("lh_source_file", "lh_is_deleted", "lh_created_date", "lh_modified_date")
SCD2_COLUMNS = ("lh_valid_from", "lh_valid_to", "lh_is_current")


def load_keyed(
    *,
    table: BaseTable,
    data_dir: LakeRoot,
    extracts: list[Extract],
    schema: pa.Schema,
    target: DeltaTable | None,
    state: DeltaTable | None,
    now: datetime,
) -> WriteCounts:
    """Fold the batch into the observations, then write the changed rows and the new observations."""
    spec = HistorySpec(
        keys=tuple(table.business_keys),
        columns=tuple(schema.names),
        modify_date_column=table.modify_date_column,
        history_columns=tuple(table.history_columns) if table.history_columns is not None else None,
    )
    applied: set[str] = set()
    con = connect()
    state_view = None
    if state is not None:
        register_delta(con, "state_delta", state, split=("_kind", history.KINDS))
        state_view = "state_delta"
        done = con.execute("SELECT DISTINCT _file FROM state_delta__extract").fetchall()
        applied = {row[0] for row in done}
    new = [e for e in extracts if e.file not in applied]
    if not new:
        con.close()
        key_list = ", ".join(q(k) for k in spec.keys)
        data = [f"SELECT {key_list} FROM {e.rows.table}" for e in extracts if e.load_type != "keys"]
        return WriteCounts(
            status="up_to_date",
            unchanged=_count_distinct(" UNION ".join(data)) if data else 0,
            notes=("every landing file of this partition was applied before; nothing changed",),
        )

    def reread(file: str) -> pa.Table:
        landing = parse_landing_file(inside(data_dir, file))
        if landing is None or not landing.path.is_file():
            raise BaseLoadError(
                f"table {table.name!r}: landing file {file} was applied before and must be re-read to place keys "
                "first seen in an earlier extract, but it is missing"
            )
        extract = read_extract(table.model_copy(update={"quality_rules": []}), landing, data_dir)
        try:
            keys = _arrow(f"SELECT {', '.join(q(k) for k in spec.keys)} FROM {extract.rows.table}")
        finally:
            drop_staged([extract])
        return align(keys, pa.schema([schema.field(k) for k in spec.keys]), text_format=True, where=f"table {table.name!r}, file {file}")

    try:
        planned = history.stage_plan(con, state_view, new, spec, schema=schema, reread_keys=reread)
        rows = planned.history if table.write_behaviour == "scd2" else _current_rows(con, planned.history)
        changes = _diff(con, table=table, spec=spec, rows=rows, affected=planned.affected, target=target, now=now)
        counts = WriteCounts(
            inserted=changes.inserted,
            updated=changes.updated,
            soft_deleted=changes.soft_deleted,
            replaced=changes.removed,
            unchanged=max(planned.batch_keys - changes.changed_keys, 0),
        )
        _commit_keyed(con, table=table, data_dir=data_dir, changes=changes, target=target)
        con.execute(f"DROP TABLE IF EXISTS {planned.history}")
        write_query(
            con,
            f"SELECT * FROM {planned.new_state}",
            state_path(data_dir, table),
            mode="append",
            partition_by=["_kind"],
            schema_mode="merge",
            configuration=TABLE_CONFIG if state is None else None,
        )
    finally:
        con.close()
    _compact_state(data_dir, table, state)
    return counts


def _count_distinct(query: str) -> int:
    con = connect()
    try:
        return con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]
    finally:
        con.close()


def _arrow(query: str) -> pa.Table:
    con = connect()
    try:
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


def _current_rows(con: duckdb.DuckDBPyConnection, history_rows: str) -> str:
    """SCD1: the current version of each key, without the validity columns (a view)."""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW scd1_rows AS SELECT * EXCLUDE ({', '.join(SCD2_COLUMNS)}) "
        f"FROM {history_rows} WHERE lh_is_current"
    )
    return "scd1_rows"


def _compact_state(data_dir: LakeRoot, table: BaseTable, state: DeltaTable | None) -> None:
    """Every load appends a few small files per observation kind; once there are many, bin the
    small ones (the data is unchanged, one atomic commit) so later loads open few files."""
    if state is None:
        state = open_delta(state_path(data_dir, table))
    else:
        state.update_incremental()
    if state.get_add_actions(flatten=False).num_rows > COMPACT_AFTER_FILES:
        compact(state, target_size=COMPACT_SIZE)


@dataclass(frozen=True)
class Changes:
    """The rows to write (relation ``source`` on the connection, with an ``_action`` column,
    columns ``columns``) and what they amount to."""

    source: str
    columns: list[str]
    match: list[str]
    inserted: int
    updated: int
    soft_deleted: int
    removed: int
    changed_keys: int


def _diff(
    con: duckdb.DuckDBPyConnection,
    *,
    table: BaseTable,
    spec: HistorySpec,
    rows: str,
    affected: str,
    target: DeltaTable | None,
    now: datetime,
) -> Changes:
    """Compare the recomputed rows of the affected keys (relation ``rows``) with what the table holds."""
    scd2 = table.write_behaviour == "scd2"
    match = list(spec.keys) + (["lh_valid_from"] if scd2 else [])
    compare = list(spec.columns) + ["lh_source_file", "lh_is_deleted"] + (["lh_valid_to", "lh_is_current"] if scd2 else [])
    out_columns = list(spec.columns) + list(SYSTEM_KEYED) + (list(SCD2_COLUMNS) if scd2 else [])
    on_keys = " AND ".join(f"a.{q(k)} = o.{q(k)}" for k in spec.keys)
    if target is not None:
        register_delta(con, "tgt", target)
        names = {row[0] for row in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM tgt)").fetchall()}
        existing = [c for c in out_columns if c in names]
        fill = ", ".join(q(c) if c in existing else f"NULL AS {q(c)}" for c in out_columns)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE o_rows AS SELECT {fill} FROM (SELECT o.* FROM tgt o SEMI JOIN {affected} a ON {on_keys})"
        )
    else:
        cols = ", ".join(q(c) for c in out_columns if c not in ("lh_created_date", "lh_modified_date"))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE o_rows AS SELECT {cols}, NULL::TIMESTAMP AS lh_created_date, "
            f"NULL::TIMESTAMP AS lh_modified_date FROM {rows} WHERE false"
        )
    join = " AND ".join(f"n.{q(c)} = o.{q(c)}" for c in match)
    differs = " OR ".join(f"n.{q(c)} IS DISTINCT FROM o.{q(c)}" for c in compare)
    n_cols = ", ".join(
        f"n.{q(c)}"
        for c in list(spec.columns) + ["lh_source_file", "lh_is_deleted"] + (list(SCD2_COLUMNS) if scd2 else [])
    )
    # With no table yet every row is an insert: a view, not a copy of a first load's rows.
    kind = "TABLE" if target is not None else "VIEW"
    stamp = timestamp_literal(now)
    con.execute(
        f"""CREATE OR REPLACE TEMP {kind} changes AS
        SELECT {n_cols}, $now::TIMESTAMP AS lh_created_date, $now::TIMESTAMP AS lh_modified_date, 'insert' AS _action
        FROM {rows} n ANTI JOIN o_rows o ON {join}
        UNION ALL BY NAME
        SELECT {n_cols}, o.lh_created_date, $now::TIMESTAMP AS lh_modified_date, 'update' AS _action
        FROM {rows} n JOIN o_rows o ON {join} WHERE {differs}
        UNION ALL BY NAME
        SELECT o.*, 'delete' AS _action FROM o_rows o ANTI JOIN {rows} n ON {join}""".replace("$now", stamp),
    )
    # Keys whose current row is deleted now but was not before.
    cur_n = "lh_is_current" if scd2 else "true"
    (soft_deleted,) = con.execute(
        f"""SELECT count(*) FROM (SELECT * FROM {rows} WHERE {cur_n} AND lh_is_deleted) n
        ANTI JOIN (SELECT * FROM o_rows WHERE {cur_n} AND lh_is_deleted) o ON {" AND ".join(f"n.{q(k)} = o.{q(k)}" for k in spec.keys)}"""
    ).fetchall()[0]
    counts = dict(con.execute("SELECT _action, count(*) FROM changes GROUP BY ALL").fetchall())
    (changed_keys,) = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(q(k) for k in spec.keys)} FROM changes)"
    ).fetchall()[0]
    inserted = counts.get("insert", 0)
    updated = counts.get("update", 0)
    if scd2:
        inserted = max(inserted - soft_deleted, 0)  # a deletion's new version is counted as soft-deleted
    else:
        updated = max(updated - soft_deleted, 0)
    return Changes(
        source="changes",
        columns=out_columns,
        match=match,
        inserted=inserted,
        updated=updated,
        soft_deleted=soft_deleted,
        removed=counts.get("delete", 0),
        changed_keys=changed_keys,
    )


# Data files of keyed tables are written in key order and kept small, so a day's changes (mostly
# recent keys) rewrite some files instead of the whole table; see _key_ranges and the module doc.
FILE_SIZE = 16 << 20
COMPACT_AFTER_FILES = 40  # state files (all kinds) before small ones are binned together
COMPACT_SIZE = 8 << 20  # files at least this big are left alone, so big tables rewrite little
# Checkpoints every 10 commits: opening a table then reads one Parquet checkpoint and at most
# nine JSON commits, not the whole log (the default interval is 100 commits).
TABLE_CONFIG = {"delta.checkpointInterval": "10"}
MAX_RANGES = 16


def _commit_keyed(
    con: duckdb.DuckDBPyConnection, *, table: BaseTable, data_dir: LakeRoot, changes: Changes, target: DeltaTable | None
) -> None:
    """Write the changes: a first load streams its rows in key order into a new table; later loads
    replace the changed key ranges (integer keys) or merge."""
    path = str(table_path(data_dir, table))
    columns, match = changes.columns, changes.match
    cols = ", ".join(q(c) for c in columns)
    order = ", ".join(q(c) for c in match)
    if target is None:  # with no table yet, every change is an insert
        write_query(
            con,
            f"SELECT {cols} FROM {changes.source} WHERE _action = 'insert' ORDER BY {order}",
            table_path(data_dir, table),
            mode="error",
            partition_by=table.partition_by or None,
            file_size=FILE_SIZE,
            configuration={"delta.targetFileSize": str(FILE_SIZE), **TABLE_CONFIG},
        )
        return
    if not (changes.inserted or changes.updated or changes.soft_deleted or changes.removed or _any_rows(con, changes.source)):
        return
    stored = pa.schema(target.schema().to_arrow())
    source_schema = plain_schema(con.sql(f"SELECT {cols} FROM {changes.source} LIMIT 0").to_arrow_table().schema)
    missing = [source_schema.field(c) for c in columns if c not in stored.names]
    if missing:
        target.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
        target = open_delta(path)
        stored = pa.schema(target.schema().to_arrow())
    # The table's own types (a day's changes come out of DuckDB typed by the batch).
    write_schema = pa.schema([stored.field(c) if c in stored.names else source_schema.field(c) for c in columns])
    key = table.business_keys[0]
    # File-level replace needs the files on local disk; on object storage the merge prunes by key range.
    rewrite = not table.partition_by and is_local(target) and pa.types.is_integer(source_schema.field(key).type)
    if rewrite and set(stored.names) <= set(columns):
        _rewrite_ranges(con, target=target, changes=changes, schema=write_schema, key=key)
        return
    predicate = " AND ".join([f"t.{q(c)} = s.{q(c)}" for c in match] + _key_ranges(con, changes.source, table.business_keys))
    values = {q(c): f"s.{q(c)}" for c in columns}
    source = stream(con, f"SELECT {cols}, _action FROM {changes.source} ORDER BY {order}")
    source = source.cast(pa.schema([*write_schema, pa.field("_action", pa.string())]))
    (
        merge_rows(target, source, predicate=predicate)
        .when_matched_delete(predicate="s._action = 'delete'")
        .when_matched_update(updates=values, predicate="s._action = 'update'")
        .when_not_matched_insert(updates=values, predicate="s._action = 'insert'")
        .execute()
    )


def _any_rows(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {relation})").fetchall()[0][0])


def _rewrite_ranges(
    con: duckdb.DuckDBPyConnection, *, target: DeltaTable, changes: Changes, schema: pa.Schema, key: str
) -> None:
    """Apply the changes by rewriting only the files whose key range (min/max statistics) holds
    a changed key: their rows that did not change and the changed rows are written in key order
    as new files, which replace them in one commit. Files stay in key order, so the next day's
    changes (mostly recent keys) touch few files. When those files hold most of the table's rows
    (changes spread over all keys), the whole table is rewritten in key order instead."""
    keys = con.sql(f"SELECT DISTINCT {q(key)} AS k FROM {changes.source} ORDER BY 1").to_arrow_table().column("k")
    values = keys.to_numpy().astype(np.int64) if len(keys) else np.array([], dtype=np.int64)
    chosen, rows, total = files_holding(target, key, values)
    whole = rows * 2 > total or native_files(target) is None
    root = local_root(target)
    only = None if whole else {str(root / p) for p in chosen}
    register_delta(con, "tgt", target, only=only)
    cols = ", ".join(q(c) for c in changes.columns)
    types = _duck_types(con, schema)
    typed = ", ".join(f"CAST({q(f.name)} AS {types[f.name]}) AS {q(f.name)}" for f in schema)
    on = " AND ".join(f"c.{q(c)} = s.{q(c)}" for c in changes.match)
    order = ", ".join(q(c) for c in changes.match)
    query = f"""SELECT {typed} FROM (
            SELECT c.* FROM (SELECT {cols} FROM tgt) c ANTI JOIN {changes.source} s ON {on}
            UNION ALL BY NAME SELECT {cols} FROM {changes.source} WHERE _action IN ('insert', 'update'))
        ORDER BY {order}"""
    if whole:
        write_query(con, query, target.table_uri, mode="overwrite", file_size=FILE_SIZE)
    else:
        write_query(con, query, target.table_uri, mode="append", remove=chosen, file_size=FILE_SIZE)


def _duck_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """DuckDB's type of each Arrow field, read off one empty table of the schema."""
    con.register("type_proto", schema.empty_table())
    try:
        return dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM type_proto)").fetchall())
    finally:
        con.unregister("type_proto")


def _key_ranges(con: duckdb.DuckDBPyConnection, source: str, keys: list[str], alias: str | None = "t") -> list[str]:
    """Target-side conditions every source key satisfies, so the merge skips (by min/max file
    statistics) the files no source row can match. Integer keys only: their literals are exact.
    The first key is split into at most MAX_RANGES ranges at its largest gaps, so a few old keys
    next to many new ones do not open up the whole key space."""
    conditions: list[str] = []
    for index, key in enumerate(keys):
        column = con.sql(f"SELECT DISTINCT {q(key)} AS k FROM {source} ORDER BY 1").to_arrow_table().column("k")
        if not pa.types.is_integer(column.type) or column.null_count or len(column) == 0:
            continue
        values = column.to_numpy()
        if index == 0 and len(values) > 1:
            gaps = np.diff(values)
            cut = np.sort(np.argsort(gaps, kind="stable")[-(MAX_RANGES - 1) :])
            cut = cut[gaps[cut] > 1]
            starts = np.concatenate(([values[0]], values[cut + 1]))
            ends = np.concatenate((values[cut], [values[-1]]))
        else:
            starts, ends = values[:1], values[-1:]
        ref = f"{alias}.{q(key)}" if alias else q(key)
        ranges = [f"({ref} >= {int(a)} AND {ref} <= {int(b)})" for a, b in zip(starts, ends, strict=True)]
        conditions.append("(" + " OR ".join(ranges) + ")")
    return conditions
