"""Load one partition of landing files into a Base Delta table.

Where things live (all under the data root):

* ``base/<table>/``              the Base table users query;
* ``base/_state/<table>/``       for scd1/scd2, the observations the table is derived from (see
  the ``history`` package): a Delta table partitioned by ``_kind``. Keeping them in Delta, next to the
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
observations are folded, and keyed tables write their rows in key order: a load replaces only
the key ranges it changed (predicate overwrite), instead of a merge that rewrites every file;
changes spread over most keys rewrite the whole table, sorted, in one overwrite.
The keyed path is ``keyed.py``; this module selects and reads the batch and runs the others.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable

from medallion_assets.engine.base.keyed import load_keyed
from medallion_assets.engine.base.model import BaseTable, lock_path, quarantine_path, state_path, table_path
from medallion_assets.engine.base.reader import DELETE_FLAG, Extract, Selection, history_files, partition_files
from medallion_assets.engine.base.schema import BaseLoadError, unify
from medallion_assets.engine.base.staging import StagedRows, align_staged, drop_staged, read_extract, select_staged
from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.memory import budgeted
from medallion_assets.engine.outcome import LoadOutcome, WriteCounts
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal, timestamp_literal
from medallion_assets.engine.storage.conflicts import retry_on_commit_conflict
from medallion_assets.engine.storage.delta_copy import local_root, write_query
from medallion_assets.engine.storage.files import exclusive_lock
from medallion_assets.engine.storage.lake import (
    LakeRoot,
    as_path,
    delete_rows,
    is_delta,
    open_delta,
    remove_tree,
    write_delta,
)
from medallion_assets.engine.storage.scan import connect, described, native_files, register_delta, stream

EXTRACTED_AT_KEY = "medallion.extracted_at"


def _open(path: Path) -> DeltaTable | None:
    return open_delta(path) if is_delta(path) else None


def _data_schema(dt: DeltaTable | None, skip_prefix: tuple[str, ...] = ("lh_", "_")) -> pa.Schema | None:
    if dt is None:
        return None
    schema = pa.schema(dt.schema().to_arrow())
    return pa.schema([f for f in schema if not f.name.startswith(skip_prefix)])


@budgeted(lambda table, *args, **kwargs: f"table {table.name!r}")
def load_partition(table: BaseTable, data_dir: LakeRoot, partition_date: date, *, now: datetime | None = None) -> LoadOutcome:
    """Load one daily partition of ``table`` (``recreate`` rebuilds from every partition up to it).

    Loads of one table run one at a time across processes (see the module docstring); a commit
    conflict with an outside writer re-runs the whole read-compute-commit, never just the commit.
    """
    data_dir = as_path(data_dir)
    now = now or utc_now()
    load = _recreate if table.recreate else _load_partition
    with exclusive_lock(lock_path(data_dir, table)):
        return retry_on_commit_conflict(lambda: load(table, data_dir, partition_date, now))


STAGING_PREFIX = "_recreate_"


def _recreate(table: BaseTable, data_dir: LakeRoot, partition_date: date, now: datetime) -> LoadOutcome:
    """Rebuild beside the table, then replace the table, its state and its quarantine each with
    one Delta overwrite commit: a reader, or a kill at any moment, sees the old table or the new
    one, never none. A kill during the rebuild leaves only the staging tables, cleared next time."""
    staged = table.model_copy(update={"name": f"{STAGING_PREFIX}{table.name}"})
    outcome = _load_partition(staged, data_dir, partition_date, now)
    for path_of in (table_path, state_path, quarantine_path):
        _replace_with(path_of(data_dir, staged), path_of(data_dir, table))
    for path_of in (table_path, state_path, quarantine_path):
        remove_tree(path_of(data_dir, staged))
    return described(replace(outcome, table=table.name, path=str(table_path(data_dir, table))), _open(table_path(data_dir, table)))


def _replace_with(staged_path: Path, real_path: Path) -> None:
    staged, real = _open(staged_path), _open(real_path)
    if staged is None:
        if real is not None:
            delete_rows(real)  # the rebuild has no such rows: one commit that removes them all
        return
    dataset = staged.to_pyarrow_dataset()  # streamed batch by batch, never the whole rebuild at once
    write_delta(
        str(real_path),
        pa.RecordBatchReader.from_batches(dataset.schema, dataset.to_batches()),
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=staged.metadata().partition_columns or None,
    )


def _load_partition(table: BaseTable, data_dir: LakeRoot, partition_date: date, now: datetime) -> LoadOutcome:
    selection: Selection = (
        history_files(table, data_dir, partition_date) if table.recreate else partition_files(table, data_dir, partition_date)
    )
    outcome = LoadOutcome(
        layer="base",
        table=table.name,
        partition_date=partition_date,
        write_behaviour=table.write_behaviour,
        rows_read=0,
        quarantined=0,
        path=str(table_path(data_dir, table)),
        files=tuple(f.path.relative_to(data_dir).as_posix() if f.path.is_relative_to(data_dir) else str(f.path) for f in selection.files),
    )
    if selection.skipped:
        outcome = outcome.noted(f"{len(selection.skipped)} landing file(s) not read under read behaviour {table.read_behaviour!r}")
    target = None if table.recreate else _open(table_path(data_dir, table))
    if not selection.files:
        return described(replace(outcome, status="no_files"), target)

    extracts: list[Extract] = []
    try:
        for landing in selection.files:
            extracts.append(read_extract(table, landing, data_dir))
        _refuse_empty_full_extract(table, extracts, target)
        state = None if table.recreate else _open(state_path(data_dir, table))
        outcome = replace(outcome, rows_read=sum(e.rows_read for e in extracts if e.load_type != "keys"))
        # Aligned rows own what they were made from: from here on, dropping them frees both.
        extracts, schema = _align_batch(table, extracts, _data_schema(target) or _data_schema(state))
        return _load_extracts(
            table, data_dir, partition_date, now=now, extracts=extracts, schema=schema, target=target, state=state, outcome=outcome
        )
    finally:
        drop_staged(extracts)


def _load_extracts(
    table: BaseTable,
    data_dir: LakeRoot,
    partition_date: date,
    *,
    now: datetime,
    extracts: list[Extract],
    schema: pa.Schema,
    target: DeltaTable | None,
    state: DeltaTable | None,
    outcome: LoadOutcome,
) -> LoadOutcome:
    """Write one batch of read, checked and aligned extracts with the table's write behaviour."""
    outcome = replace(outcome, quarantined=sum(e.quarantine.num_rows for e in extracts if e.quarantine is not None))

    if table.recreate:
        # Only ever the staging tables of _recreate: clear what an interrupted rebuild left.
        for path in (table_path(data_dir, table), state_path(data_dir, table), quarantine_path(data_dir, table)):
            if path.exists():
                remove_tree(path)
        outcome = outcome.noted("recreate: table rebuilt from every landing partition up to this one")

    if table.keyed:
        counts = load_keyed(table=table, data_dir=data_dir, extracts=extracts, schema=schema, target=target, state=state, now=now)
    elif table.write_behaviour == "append":
        counts = _load_append(
            table=table, data_dir=data_dir, partition_date=partition_date, extracts=extracts, target=target, now=now
        )
    else:
        counts = _load_overwrite(table=table, data_dir=data_dir, extracts=extracts, target=target, now=now)
    _write_quarantine(table, data_dir, extracts, now)
    return described(outcome.counted(counts), _open(table_path(data_dir, table)))


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
    data = [_data_schema_of(e.rows) for e in extracts if e.load_type != "keys"]
    where = f"table {table.name!r}"
    batch = unify([d.empty_table() for d in data], where).schema if data else pa.schema([])
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
            rows = select_staged(align_staged(extract.rows, key_schema, text_format=text, where=where), table.business_keys)
        else:
            target = schema
            if DELETE_FLAG in extract.rows.column_names:
                target = schema.append(pa.field(DELETE_FLAG, pa.bool_()))
            rows = align_staged(extract.rows, target, text_format=text, where=where)
        aligned.append(Extract(rows, extract.load_type, extract.extracted_at, extract.file, extract.rows_read, extract.quarantine))
    return aligned, schema


def _data_schema_of(rows: StagedRows) -> pa.Schema:
    return pa.schema([f for f in rows.schema if f.name != DELETE_FLAG])


# --- overwrite and append -----------------------------------------------------------------


def _with_lineage(con: duckdb.DuckDBPyConnection, extracts: list[Extract], now: datetime) -> str:
    """A temp table of the batch's data rows with ``lh_source_file`` and the system dates, exact
    duplicates dropped (first file kept), in landing file order."""
    parts = [
        f"SELECT *, {string_literal(e.file)}::VARCHAR AS lh_source_file FROM {e.rows.table}" for e in extracts if e.load_type != "keys"
    ]
    con.execute(f"CREATE OR REPLACE TEMP VIEW batch_rows AS {' UNION ALL BY NAME '.join(parts)}")
    names = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM batch_rows)").fetchall()]
    grouped = ", ".join(q(c) for c in names if c != "lh_source_file")
    stamp = timestamp_literal(now)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE lineage_rows AS SELECT {grouped}, min(lh_source_file) AS lh_source_file,
        {stamp} AS lh_created_date, {stamp} AS lh_modified_date FROM batch_rows GROUP BY ALL"""
    )
    return "lineage_rows"


def _load_overwrite(
    *,
    table: BaseTable,
    data_dir: LakeRoot,
    extracts: list[Extract],
    target: DeltaTable | None,
    now: datetime,
) -> WriteCounts:
    newest = max(e.extracted_at for e in extracts)
    if target is not None:
        last = target.history(1)[0].get(EXTRACTED_AT_KEY)
        if last and datetime.fromisoformat(last) > newest:
            return WriteCounts(status="stale", notes=(f"the table holds a newer extract ({last}); an older one does not replace it",))
    con = connect()
    try:
        rows = f"SELECT * FROM {_with_lineage(con, extracts, now)}"
        if table.business_keys and table.modify_date_column:
            keys = ", ".join(q(k) for k in table.business_keys)
            rows += (
                f" QUALIFY row_number() OVER (PARTITION BY {keys} "
                f"ORDER BY {q(table.modify_date_column)} DESC NULLS LAST, lh_source_file DESC) = 1"
            )
        con.execute(f"CREATE OR REPLACE TEMP TABLE overwrite_rows AS {rows}")
        previous = _count(con, "previous", target)
        write_query(
            con,
            "SELECT * FROM overwrite_rows ORDER BY lh_source_file",
            table_path(data_dir, table),
            mode="overwrite",
            schema_mode="merge" if target is not None else None,
            partition_by=table.partition_by or None,
            commit_properties=CommitProperties(custom_metadata={EXTRACTED_AT_KEY: newest.isoformat()}),
        )
        (inserted,) = con.execute("SELECT count(*) FROM overwrite_rows").fetchall()[0]
    finally:
        con.close()
    return WriteCounts(inserted=inserted, replaced=previous)


def _count(con: duckdb.DuckDBPyConnection, name: str, target: DeltaTable | None, where: str = "true") -> int:
    """Rows of the Delta table (matching ``where``), counted by a lazy scan; 0 with no table."""
    if target is None:
        return 0
    register_delta(con, name, target)
    return con.execute(f"SELECT count(*) FROM {name} WHERE {where}").fetchall()[0][0]


def _replace_partition_rows(con: duckdb.DuckDBPyConnection, *, target: DeltaTable, rows: str, predicate: str) -> None:
    """A re-run of an append replaces the partition's earlier rows: the files holding any of them
    are rewritten without them, plus the new rows, in one commit (usually just that day's files)."""
    root = local_root(target)
    files = [path for path, _ in native_files(target)]
    listing = "[" + ", ".join(string_literal(f) for f in files) + "]"
    held = [r[0] for r in con.execute(
        f"SELECT DISTINCT filename FROM read_parquet({listing}, filename = true, union_by_name = true) WHERE {predicate}"
    ).fetchall()] if files else []
    register_delta(con, "held", target, only=set(held))
    kept = f"SELECT * FROM held WHERE NOT ({predicate})"
    remove = [Path(f).relative_to(root).as_posix() for f in held]
    query = f"SELECT * FROM ({kept}) UNION ALL BY NAME {rows}"
    write_query(con, query, target.table_uri, mode="append", remove=remove, schema_mode="merge")


def _partition_predicate(table: BaseTable, partition_date: date) -> str:
    day = f"{partition_date.year:04d}/{partition_date.month:02d}/{partition_date.day:02d}"
    patterns = (f"landing/{ref.source}/{ref.object}/%/{day}/%" for ref in table.landing)
    return " OR ".join(f"lh_source_file LIKE {string_literal(pattern)}" for pattern in patterns)


def _load_append(
    *,
    table: BaseTable,
    data_dir: LakeRoot,
    partition_date: date,
    extracts: list[Extract],
    target: DeltaTable | None,
    now: datetime,
) -> WriteCounts:
    path = str(table_path(data_dir, table))
    con = connect()
    try:
        rows = _with_lineage(con, extracts, now)
        (inserted,) = con.execute(f"SELECT count(*) FROM {rows}").fetchall()[0]
        query = f"SELECT * FROM {rows} ORDER BY lh_source_file"
        if target is None or table.recreate:
            mode = "append" if target is None else "overwrite"
            write_query(con, query, path, mode=mode, schema_mode="merge", partition_by=table.partition_by or None)
            return WriteCounts(inserted=inserted)
        predicate = _partition_predicate(table, partition_date)
        replaced = _count(con, "previous", target, where=predicate)
        if table.partition_by or native_files(target) is None:
            write_delta(path, stream(con, query), mode="overwrite", predicate=predicate, schema_mode="merge")
        else:
            _replace_partition_rows(con, target=target, rows=query, predicate=predicate)
    finally:
        con.close()
    notes = (f"re-run: replaced this partition's {replaced} earlier row(s)",) if replaced else ()
    return WriteCounts(inserted=inserted, replaced=replaced, notes=notes)


# --- quarantine and description ------------------------------------------------------------


def _write_quarantine(table: BaseTable, data_dir: LakeRoot, extracts: list[Extract], now: datetime) -> None:
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
            write_delta(path, rows, mode="append")
        else:
            write_delta(path, rows, mode="overwrite", predicate=predicate, schema_mode="merge")
    elif existing is not None and files:
        delete_rows(existing, predicate=predicate)
