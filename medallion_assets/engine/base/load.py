"""Load one partition of landing files into a Base Delta table.

Where things live (all under the data root):

* ``base/<table>/``              the Base table users query;
* ``base/_state/<table>/``       for scd1/scd2, the observations the table is derived from (see
  ``history.py``): a Delta table partitioned by ``_kind``. Keeping them in Delta, next to the
  table, rather than in a side file means they commit atomically and cannot drift;
* ``base/_quarantine/<table>/``  rows that failed a data-quality rule, kept aside, not dropped.

Write order for keyed tables: the Base table first, then the observations. If a run dies between
the two commits, the next run treats the batch as new again; the history is a function of the
observations, so it recomputes the same rows and the Base merge changes nothing. ``overwrite``
records the extract time in the Delta commit and never replaces a newer extract with an older
one; ``append`` replaces the partition's own rows (by their ``lh_source_file`` landing path).
Nothing is written before every file of the batch has been read and checked, so a bad file or an
incompatible type change leaves every table untouched.

Concurrency: a backfill and a sensor-triggered run may load the same table at once. Each load
reads the table and its state, computes, then commits, so two overlapping loads would either fail
on a Delta commit conflict or commit a result computed from a stale read; ``load_partition``
therefore holds a per-table file lock (``base/_locks/<table>.lock``) around the whole cycle, and
re-runs the cycle (re-reading) if a writer outside the lock still wins a commit race.

Speed: tables are read through DuckDB's Parquet reader (``scan.py``), only the affected keys'
observations are folded, and keyed tables keep their files sorted by key: a load replaces only
the key ranges it changed (predicate overwrite), instead of a merge that rewrites every file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Schema, write_deltalake

from medallion_assets.engine.base import history
from medallion_assets.engine.base.history import HistorySpec
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.base.reader import (
    DELETE_FLAG,
    Extract,
    Selection,
    history_files,
    partition_files,
    read_extract,
)
from medallion_assets.engine.base.scan import connect, register_delta
from medallion_assets.engine.base.schema import BaseLoadError, align, unify
from medallion_assets.engine.conflicts import retry_on_commit_conflict
from medallion_assets.engine.files import exclusive_lock
from medallion_assets.engine.paths import inside, parse_landing_file
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal

EXTRACTED_AT_KEY = "medallion.extracted_at"
SYSTEM_KEYED = ("lh_source_file", "lh_is_deleted", "lh_created_date", "lh_modified_date")
SCD2_COLUMNS = ("lh_valid_from", "lh_valid_to", "lh_is_current")


@dataclass
class LoadResult:
    """What a partition load did; the Dagster layer turns it into materialization metadata."""

    table: str
    partition_date: date
    write_behaviour: str
    status: str = "loaded"  # loaded | no_files | up_to_date | stale
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    soft_deleted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    removed: int = 0
    delta_version: int | None = None
    schema: list[tuple[str, str]] = field(default_factory=list)
    preview: pa.Table | None = None
    notes: list[str] = field(default_factory=list)


def table_path(data_dir: Path, table: BaseTable) -> Path:
    return inside(data_dir, f"base/{table.name}")


def state_path(data_dir: Path, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_state/{table.name}")


def quarantine_path(data_dir: Path, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_quarantine/{table.name}")


def _open(path: Path) -> DeltaTable | None:
    return DeltaTable(str(path)) if DeltaTable.is_deltatable(str(path)) else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _data_schema(dt: DeltaTable | None, skip_prefix: tuple[str, ...] = ("lh_", "_")) -> pa.Schema | None:
    if dt is None:
        return None
    schema = pa.schema(dt.schema().to_arrow())
    return pa.schema([f for f in schema if not f.name.startswith(skip_prefix)])


def lock_path(data_dir: Path, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_locks/{table.name}.lock")


def load_partition(table: BaseTable, data_dir: Path, partition_date: date, *, now: datetime | None = None) -> LoadResult:
    """Load one daily partition of ``table`` (``recreate`` rebuilds from every partition up to it).

    Loads of one table run one at a time across processes (see the module docstring); a commit
    conflict with an outside writer re-runs the whole read-compute-commit, never just the commit.
    """
    data_dir = Path(data_dir)
    now = now or _now()
    load = _recreate if table.recreate else _load_partition
    with exclusive_lock(lock_path(data_dir, table)):
        return retry_on_commit_conflict(lambda: load(table, data_dir, partition_date, now))


STAGING_PREFIX = "_recreate_"


def _recreate(table: BaseTable, data_dir: Path, partition_date: date, now: datetime) -> LoadResult:
    """Rebuild beside the table, then replace the table, its state and its quarantine each with
    one Delta overwrite commit: a reader, or a kill at any moment, sees the old table or the new
    one, never none. A kill during the rebuild leaves only the staging tables, cleared next time."""
    staged = table.model_copy(update={"name": f"{STAGING_PREFIX}{table.name}"})
    result = _load_partition(staged, data_dir, partition_date, now)
    for path_of in (table_path, state_path, quarantine_path):
        _replace_with(path_of(data_dir, staged), path_of(data_dir, table))
    for path_of in (table_path, state_path, quarantine_path):
        shutil.rmtree(path_of(data_dir, staged), ignore_errors=True)
    result.table = table.name
    _describe(result, _open(table_path(data_dir, table)))
    return result


def _replace_with(staged_path: Path, real_path: Path) -> None:
    staged, real = _open(staged_path), _open(real_path)
    if staged is None:
        if real is not None:
            real.delete()  # the rebuild has no such rows: one commit that removes them all
        return
    write_deltalake(
        str(real_path),
        staged.to_pyarrow_table(),
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=staged.metadata().partition_columns or None,
    )


def _load_partition(table: BaseTable, data_dir: Path, partition_date: date, now: datetime) -> LoadResult:
    result = LoadResult(table=table.name, partition_date=partition_date, write_behaviour=table.write_behaviour)
    selection: Selection = (
        history_files(table, data_dir, partition_date) if table.recreate else partition_files(table, data_dir, partition_date)
    )
    result.files = [f.path.relative_to(data_dir).as_posix() if f.path.is_relative_to(data_dir) else str(f.path) for f in selection.files]
    if selection.skipped:
        result.notes.append(f"{len(selection.skipped)} landing file(s) not read under read behaviour {table.read_behaviour!r}")
    target = None if table.recreate else _open(table_path(data_dir, table))
    if not selection.files:
        result.status = "no_files"
        _describe(result, target)
        return result

    extracts = [read_extract(table, f, data_dir) for f in selection.files]
    result.rows_read = sum(e.rows_read for e in extracts if e.load_type != "keys")
    _refuse_empty_full_extract(table, extracts, target)
    state = None if table.recreate else _open(state_path(data_dir, table))
    stored = _data_schema(target) or _data_schema(state)
    extracts, schema = _align_batch(table, extracts, stored)
    quarantine = [e for e in extracts if e.quarantine is not None]
    result.quarantined = sum(e.quarantine.num_rows for e in quarantine)

    if table.recreate:
        # Only ever the staging tables of _recreate: clear what an interrupted rebuild left.
        for path in (table_path(data_dir, table), state_path(data_dir, table), quarantine_path(data_dir, table)):
            if path.exists():
                shutil.rmtree(path)
        result.notes.append("recreate: table rebuilt from every landing partition up to this one")

    if table.keyed:
        _load_keyed(table, data_dir, extracts, schema, target, state, result, now)
    elif table.write_behaviour == "append":
        _load_append(table, data_dir, partition_date, extracts, schema, target, result, now)
    else:
        _load_overwrite(table, data_dir, extracts, schema, target, result, now)
    _write_quarantine(table, data_dir, extracts, now)
    _describe(result, _open(table_path(data_dir, table)))
    return result


def _refuse_empty_full_extract(table: BaseTable, extracts: list[Extract], target: DeltaTable | None) -> None:
    """A full or keys extract without a single row would delete (or empty) everything stored; far
    more often it is a broken export than an empty source, so it needs an explicit opt-in."""
    if table.allow_empty_full_extract or target is None or target.to_pyarrow_dataset().count_rows() == 0:
        return
    for extract in extracts:
        if extract.load_type in ("full", "keys") and extract.rows.num_rows == 0 and extract.rows_read == 0:
            raise BaseLoadError(
                f"table {table.name!r}, file {extract.file}: the {extract.load_type} extract has no rows, which would "
                f"remove every stored row; refusing. If the source really is empty, set allow_empty_full_extract: true"
            )


def _align_batch(table: BaseTable, extracts: list[Extract], stored: pa.Schema | None) -> tuple[list[Extract], pa.Schema]:
    """Give every extract the same data schema: the stored one plus new columns at the end."""
    data = [e.rows.drop_columns([DELETE_FLAG]) if DELETE_FLAG in e.rows.column_names else e.rows for e in extracts if e.load_type != "keys"]
    where = f"table {table.name!r}"
    batch = unify([d.slice(0, 0) for d in data], where).schema if data else pa.schema([])
    fields = list(stored) if stored is not None else []
    names = {f.name for f in fields}
    fields += [f for f in batch if f.name not in names]
    if not fields and table.keyed:
        raise BaseLoadError(f"{where}: the first load of a table needs a full or delta extract, not only keys")
    schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in fields])
    aligned: list[Extract] = []
    for extract in extracts:
        text = extract.file.rsplit(".", 1)[-1] in ("csv", "json")
        where = f"table {table.name!r}, file {extract.file}"
        if extract.load_type == "keys":
            key_schema = pa.schema([schema.field(k) for k in table.business_keys])
            rows = align(extract.rows, key_schema, text_format=text, where=where).select(list(table.business_keys))
        else:
            flag = extract.rows.column(DELETE_FLAG) if DELETE_FLAG in extract.rows.column_names else None
            plain = extract.rows.drop_columns([DELETE_FLAG]) if flag is not None else extract.rows
            rows = align(plain, schema, text_format=text, where=where)
            if flag is not None:
                rows = rows.append_column(DELETE_FLAG, flag)
        aligned.append(Extract(rows, extract.load_type, extract.extracted_at, extract.file, extract.rows_read, extract.quarantine))
    return aligned, schema


# --- keyed: scd1 / scd2 -------------------------------------------------------------------


def _load_keyed(table, data_dir, extracts, schema, target, state, result: LoadResult, now) -> None:
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
        result.status = "up_to_date"
        data = [e.rows.select(list(spec.keys)) for e in extracts if e.load_type != "keys"]
        result.unchanged = pa.concat_tables(data).group_by(list(spec.keys)).aggregate([]).num_rows if data else 0
        result.notes.append("every landing file of this partition was applied before; nothing changed")
        return

    def reread(file: str) -> pa.Table:
        landing = parse_landing_file(inside(data_dir, file))
        if landing is None or not landing.path.is_file():
            raise BaseLoadError(
                f"table {table.name!r}: landing file {file} was applied before and must be re-read to place keys "
                "first seen in an earlier extract, but it is missing"
            )
        extract = read_extract(table.model_copy(update={"quality_rules": []}), landing, data_dir)
        keys = extract.rows.select(list(spec.keys))
        return align(keys, pa.schema([schema.field(k) for k in spec.keys]), text_format=True, where=f"table {table.name!r}, file {file}")

    try:
        planned = history.plan(state_view, new, spec, schema=schema, reread_keys=reread, con=con)
        rows = planned.history if table.write_behaviour == "scd2" else history.current_rows(planned.history)
        changes = _diff(con, table, spec, rows, planned.affected, target, now)
    finally:
        con.close()
    result.inserted, result.updated, result.soft_deleted, result.removed = (
        changes.inserted, changes.updated, changes.soft_deleted, changes.removed,
    )
    result.unchanged = max(planned.batch_keys - changes.changed_keys, 0)
    _commit_keyed(table, data_dir, changes.source, target, schema, now)
    write_deltalake(
        state if state is not None else str(state_path(data_dir, table)),
        planned.new_state,
        mode="append",
        partition_by=["_kind"] if state is None else None,
        schema_mode="merge",
        configuration=TABLE_CONFIG if state is None else None,
    )
    _compact_state(data_dir, table, state)


def _compact_state(data_dir: Path, table: BaseTable, state: DeltaTable | None) -> None:
    """Every load appends a few small files per observation kind; once there are many, bin the
    small ones (the data is unchanged, one atomic commit) so later loads open few files."""
    if state is None:
        state = DeltaTable(str(state_path(data_dir, table)))
    else:
        state.update_incremental()
    if state.get_add_actions(flatten=False).num_rows > COMPACT_AFTER_FILES:
        state.optimize.compact(target_size=COMPACT_SIZE)


@dataclass(frozen=True)
class Changes:
    """The rows to write (``source`` with an ``_action`` column) and what they amount to."""

    source: pa.Table
    inserted: int
    updated: int
    soft_deleted: int
    removed: int
    changed_keys: int


def _diff(con, table: BaseTable, spec: HistorySpec, rows: pa.Table, affected: pa.Table, target: DeltaTable | None, now) -> Changes:
    """Compare the recomputed rows of the affected keys with what the table holds."""
    scd2 = table.write_behaviour == "scd2"
    match = list(spec.keys) + (["lh_valid_from"] if scd2 else [])
    compare = list(spec.columns) + ["lh_source_file", "lh_is_deleted"] + (["lh_valid_to", "lh_is_current"] if scd2 else [])
    out_columns = list(spec.columns) + list(SYSTEM_KEYED) + (list(SCD2_COLUMNS) if scd2 else [])
    con.register("n_rows", rows)
    con.register("aff_keys", affected)
    on_keys = " AND ".join(f"a.{q(k)} = o.{q(k)}" for k in spec.keys)
    if target is not None:
        register_delta(con, "tgt", target)
        names = {row[0] for row in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM tgt)").fetchall()}
        existing = [c for c in out_columns if c in names]
        fill = ", ".join(q(c) if c in existing else f"NULL AS {q(c)}" for c in out_columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE o_rows AS SELECT {fill} FROM (SELECT o.* FROM tgt o SEMI JOIN aff_keys a ON {on_keys})")
    else:
        cols = ", ".join(q(c) for c in out_columns if c not in ("lh_created_date", "lh_modified_date"))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE o_rows AS SELECT {cols}, NULL::TIMESTAMP AS lh_created_date, "
            "NULL::TIMESTAMP AS lh_modified_date FROM n_rows WHERE false"
        )
    join = " AND ".join(f"n.{q(c)} = o.{q(c)}" for c in match)
    differs = " OR ".join(f"n.{q(c)} IS DISTINCT FROM o.{q(c)}" for c in compare)
    n_cols = ", ".join(
        f"n.{q(c)}"
        for c in list(spec.columns) + ["lh_source_file", "lh_is_deleted"] + (list(SCD2_COLUMNS) if scd2 else [])
    )
    params = {"now": now}
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE changes AS
        SELECT {n_cols}, $now::TIMESTAMP AS lh_created_date, $now::TIMESTAMP AS lh_modified_date, 'insert' AS _action
        FROM n_rows n ANTI JOIN o_rows o ON {join}
        UNION ALL BY NAME
        SELECT {n_cols}, o.lh_created_date, $now::TIMESTAMP AS lh_modified_date, 'update' AS _action
        FROM n_rows n JOIN o_rows o ON {join} WHERE {differs}
        UNION ALL BY NAME
        SELECT o.*, 'delete' AS _action FROM o_rows o ANTI JOIN n_rows n ON {join}""",
        params,
    )
    # Keys whose current row is deleted now but was not before.
    cur_n = "lh_is_current" if scd2 else "true"
    (soft_deleted,) = con.execute(
        f"""SELECT count(*) FROM (SELECT * FROM n_rows WHERE {cur_n} AND lh_is_deleted) n
        ANTI JOIN (SELECT * FROM o_rows WHERE {cur_n} AND lh_is_deleted) o ON {" AND ".join(f"n.{q(k)} = o.{q(k)}" for k in spec.keys)}"""
    ).fetchall()[0]
    counts = dict(con.execute("SELECT _action, count(*) FROM changes GROUP BY ALL").fetchall())
    (changed_keys,) = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(q(k) for k in spec.keys)} FROM changes)"
    ).fetchall()[0]
    source = con.sql(f"SELECT {', '.join(q(c) for c in out_columns)}, _action FROM changes").to_arrow_table()
    inserted = counts.get("insert", 0)
    updated = counts.get("update", 0)
    if scd2:
        inserted = max(inserted - soft_deleted, 0)  # a deletion's new version is counted as soft-deleted
    else:
        updated = max(updated - soft_deleted, 0)
    return Changes(
        source=source,
        inserted=inserted,
        updated=updated,
        soft_deleted=soft_deleted,
        removed=counts.get("delete", 0),
        changed_keys=changed_keys,
    )


# Data files of keyed tables are written sorted by key and kept small, so a day's changes (mostly
# recent keys) rewrite a few files instead of the whole table; see _key_ranges.
FILE_SIZE = 4 << 20
COMPACT_AFTER_FILES = 40  # state files (all kinds) before small ones are binned together
COMPACT_SIZE = 8 << 20  # files at least this big are left alone, so big tables rewrite little
# Checkpoints every 10 commits: opening a table then reads one Parquet checkpoint and at most
# nine JSON commits, not the whole log (the default interval is 100 commits).
TABLE_CONFIG = {"delta.checkpointInterval": "10"}
MAX_RANGES = 16


def _commit_keyed(
    table: BaseTable, data_dir: Path, source: pa.Table, target: DeltaTable | None, schema: pa.Schema, now
) -> None:
    path = str(table_path(data_dir, table))
    columns = [c for c in source.column_names if c != "_action"]
    scd2 = table.write_behaviour == "scd2"
    match = list(table.business_keys) + (["lh_valid_from"] if scd2 else [])
    order = [(c, "ascending") for c in match]
    if target is None:
        inserts = source.filter(pc.equal(source.column("_action"), "insert")).select(columns).sort_by(order)
        write_deltalake(
            path,
            inserts,
            mode="error",
            partition_by=table.partition_by or None,
            target_file_size=FILE_SIZE,
            configuration={"delta.targetFileSize": str(FILE_SIZE), **TABLE_CONFIG},
        )
        return
    if source.num_rows == 0:
        return
    present = set(pa.schema(target.schema().to_arrow()).names)
    missing = [source.schema.field(c) for c in columns if c not in present]
    if missing:
        target.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
        target = DeltaTable(path)
    key = table.business_keys[0]
    if not table.partition_by and pa.types.is_integer(source.schema.field(key).type) and present <= set(columns):
        _rewrite_ranges(target, source, columns, match, key)
        return
    predicate = " AND ".join([f"t.{q(c)} = s.{q(c)}" for c in match] + _key_ranges(source, table.business_keys))
    values = {q(c): f"s.{q(c)}" for c in columns}
    (
        target.merge(source.sort_by(order), predicate, source_alias="s", target_alias="t")
        .when_matched_delete(predicate="s._action = 'delete'")
        .when_matched_update(updates=values, predicate="s._action = 'update'")
        .when_not_matched_insert(updates=values, predicate="s._action = 'insert'")
        .execute()
    )


def _rewrite_ranges(target: DeltaTable, source: pa.Table, columns: list[str], match: list[str], key: str) -> None:
    """Apply the changes by replacing every row whose first key falls in the changed key ranges
    with that region's new content, written sorted by key. Unlike a merge, whose output is not
    ordered, this keeps the files clustered by key, so the next day's changes touch few files."""
    (condition,) = _key_ranges(source, [key], alias=None)
    con = connect()
    try:
        register_delta(con, "tgt", target)
        con.register("src", source)
        cols = ", ".join(q(c) for c in columns)
        on = " AND ".join(f"c.{q(c)} = s.{q(c)}" for c in match)
        order = ", ".join(q(c) for c in match)
        data = con.sql(
            f"""SELECT {cols} FROM (
                SELECT c.* FROM (SELECT {cols} FROM tgt WHERE {condition}) c ANTI JOIN src s ON {on}
                UNION ALL BY NAME SELECT {cols} FROM src WHERE _action IN ('insert', 'update'))
            ORDER BY {order}"""
        ).to_arrow_table()
    finally:
        con.close()
    write_deltalake(
        target,
        data.cast(pa.schema([source.schema.field(c) for c in columns])),
        mode="overwrite",
        predicate=condition,
        target_file_size=FILE_SIZE,
    )


def _key_ranges(source: pa.Table, keys: list[str], alias: str | None = "t") -> list[str]:
    """Target-side conditions every source key satisfies, so the merge skips (by min/max file
    statistics) the files no source row can match. Integer keys only: their literals are exact.
    The first key is split into at most MAX_RANGES ranges at its largest gaps, so a few old keys
    next to many new ones do not open up the whole key space."""
    conditions: list[str] = []
    for index, key in enumerate(keys):
        column = source.column(key)
        if not pa.types.is_integer(column.type) or column.null_count or len(column) == 0:
            continue
        values = np.unique(column.to_numpy())
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


# --- overwrite and append -----------------------------------------------------------------


def _with_lineage(extracts: list[Extract], now: datetime) -> pa.Table:
    """The batch's data rows with ``lh_source_file``, exact duplicates dropped (first file kept)."""
    parts = []
    for e in extracts:
        if e.load_type == "keys":
            continue
        parts.append(e.rows.append_column("lh_source_file", pa.array([e.file] * e.rows.num_rows, pa.string())))
    rows = pa.concat_tables(parts)
    data = [c for c in rows.column_names if c != "lh_source_file"]
    con = connect()
    try:
        con.register("batch", rows)
        grouped = ", ".join(q(c) for c in data)
        deduped = con.sql(
            f"SELECT {grouped}, min(lh_source_file) AS lh_source_file FROM batch GROUP BY ALL ORDER BY lh_source_file"
        ).to_arrow_table()
    finally:
        con.close()
    stamp = pa.array([now] * deduped.num_rows, pa.timestamp("us"))
    return deduped.append_column("lh_created_date", stamp).append_column("lh_modified_date", stamp)


def _load_overwrite(table, data_dir, extracts, schema, target, result: LoadResult, now) -> None:
    newest = max(e.extracted_at for e in extracts)
    if target is not None:
        last = target.history(1)[0].get(EXTRACTED_AT_KEY)
        if last and datetime.fromisoformat(last) > newest:
            result.status = "stale"
            result.notes.append(f"the table holds a newer extract ({last}); an older one does not replace it")
            return
    rows = _with_lineage(extracts, now)
    if table.business_keys and table.modify_date_column:
        rows = _latest_per_key(rows, table)
    previous = target.to_pyarrow_dataset().count_rows() if target is not None else 0
    write_deltalake(
        str(table_path(data_dir, table)),
        rows,
        mode="overwrite",
        schema_mode="merge" if target is not None else None,
        partition_by=table.partition_by or None,
        commit_properties=CommitProperties(custom_metadata={EXTRACTED_AT_KEY: newest.isoformat()}),
    )
    result.inserted = rows.num_rows
    result.removed = previous


def _latest_per_key(rows: pa.Table, table: BaseTable) -> pa.Table:
    con = connect()
    try:
        con.register("batch", rows)
        keys = ", ".join(q(k) for k in table.business_keys)
        return con.sql(
            f"SELECT * FROM batch QUALIFY row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY {q(table.modify_date_column)} DESC NULLS LAST, lh_source_file DESC) = 1"
        ).to_arrow_table()
    finally:
        con.close()


def _partition_predicate(table: BaseTable, partition_date: date) -> str:
    day = f"{partition_date.year:04d}/{partition_date.month:02d}/{partition_date.day:02d}"
    patterns = (f"landing/{ref.source}/{ref.object}/%/{day}/%" for ref in table.landing)
    return " OR ".join(f"lh_source_file LIKE {string_literal(pattern)}" for pattern in patterns)


def _load_append(table, data_dir, partition_date, extracts, schema, target, result: LoadResult, now) -> None:
    rows = _with_lineage(extracts, now)
    path = str(table_path(data_dir, table))
    if target is None:
        write_deltalake(path, rows, mode="append", partition_by=table.partition_by or None)
        result.inserted = rows.num_rows
        return
    if table.recreate:
        write_deltalake(path, rows, mode="overwrite", schema_mode="merge", partition_by=table.partition_by or None)
        result.inserted = rows.num_rows
        return
    predicate = _partition_predicate(table, partition_date)
    previous = target.to_pyarrow_dataset().to_table(columns=["lh_source_file"])
    con = connect()
    try:
        con.register("prev", previous)
        patterns = [f"landing/{ref.source}/{ref.object}/%/{partition_date:%Y/%m/%d}/%" for ref in table.landing]
        (replaced,) = con.execute(
            "SELECT count(*) FROM prev WHERE " + " OR ".join("lh_source_file LIKE ?" for _ in patterns), patterns
        ).fetchall()[0]
    finally:
        con.close()
    write_deltalake(path, rows, mode="overwrite", predicate=predicate, schema_mode="merge")
    result.inserted = rows.num_rows
    result.removed = replaced
    if replaced:
        result.notes.append(f"re-run: replaced this partition's {replaced} earlier row(s)")


# --- quarantine and description ------------------------------------------------------------


def _write_quarantine(table: BaseTable, data_dir: Path, extracts: list[Extract], now: datetime) -> None:
    parts = []
    for e in extracts:
        if e.quarantine is None:
            continue
        rows = e.quarantine.drop_columns([c for c in (DELETE_FLAG,) if c in e.quarantine.column_names])
        n = rows.num_rows
        rows = rows.append_column("lh_source_file", pa.array([e.file] * n, pa.string()))
        rows = rows.append_column("lh_is_quarantined", pa.array([True] * n, pa.bool_()))
        rows = rows.append_column("lh_created_date", pa.array([now] * n, pa.timestamp("us")))
        parts.append(rows)
    files = sorted({e.file for e in extracts if e.load_type != "keys"})
    path = quarantine_path(data_dir, table)
    existing = _open(path)
    if not parts and existing is None:
        return
    predicate = "lh_source_file IN (" + ", ".join(string_literal(f) for f in files) + ")"
    if parts:
        rows = unify(parts, f"table {table.name!r} quarantine")
        if existing is None:
            write_deltalake(str(path), rows, mode="append")
        else:
            write_deltalake(str(path), rows, mode="overwrite", predicate=predicate, schema_mode="merge")
    elif existing is not None and files:
        existing.delete(predicate)


def _describe(result: LoadResult, target: DeltaTable | None) -> None:
    if target is None:
        return
    result.delta_version = target.version()
    schema = pa.schema(target.schema().to_arrow())
    result.schema = [(f.name, str(f.type)) for f in schema]
    # A five-row preview through DuckDB's Parquet reader: pyarrow's head() decodes a whole file.
    con = connect()
    try:
        register_delta(con, "preview_src", target)
        preview = con.sql("SELECT * FROM preview_src LIMIT 5").to_arrow_table()
    finally:
        con.close()
    try:
        preview = preview.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    result.preview = preview
