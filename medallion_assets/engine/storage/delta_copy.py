"""Delta writes from DuckDB queries in bounded memory: DuckDB writes the Parquet files, deltalake commits them.

Why: ``write_deltalake`` given a stream of batches still keeps about as much memory as the data
it writes until the commit (measured here: +530 MB to write 630 MB from a reader with 4 MB files,
+950 MB with the default file size), so a 100M-row table cannot be written within a few GB.
DuckDB's ``COPY ... TO`` streams a query into Parquet files under its memory limit (spilling the
sorts and joins feeding it) and rolls to a new file every ``file_size`` bytes; deltalake's
transaction API (``create_table_with_add_actions``, ``DeltaTable.create_write_transaction``)
then commits the files, with their row counts and min/max statistics, as one Delta commit. A
kill before the commit leaves only unreferenced files, which a reader never sees and vacuum
removes; the table stays as it was.

Only for local tables without partition columns; other targets (a lake on object storage,
partitioned tables) go through ``write_deltalake`` with the stream (see :func:`write_query`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from medallion_assets.engine.memory import current_budget, new_database, parse_size
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal
from medallion_assets.engine.storage.lake import LakePath, is_delta, open_delta, write_delta

FILE_SIZE = 64 << 20
BATCH_ROWS = 1 << 17
STREAM_ROWS = 1 << 15  # rows per batch handed between two databases (wide rows: 15MB at 450 bytes a row)
WRITER_PART = 0.25  # of a step's DuckDB memory, for the database copying a stream into Parquet
STRING_STATS_MAX = 32  # longer strings are bounded by a prefix (the max one raised)


@dataclass(frozen=True)
class Written:
    """What a write committed."""

    rows: int
    files: int
    removed_files: int = 0


def write_query(
    con: duckdb.DuckDBPyConnection,
    query: str,
    target: Path | LakePath | str | DeltaTable,
    *,
    mode: Literal["error", "append", "overwrite"],
    partition_by: Sequence[str] | None = None,
    file_size: int = FILE_SIZE,
    configuration: dict[str, str] | None = None,
    commit_properties: CommitProperties | None = None,
    schema_mode: Literal["merge", "overwrite"] | None = None,
    remove: Sequence[str] = (),
    schema: pa.Schema | None = None,
) -> Written:
    """Write the rows of ``query`` (run on ``con``) to the Delta table at ``target`` in one commit.

    ``mode="append"`` with ``remove`` (paths of the table's files, as its log names them) replaces
    those files by the new ones: the file-level rewrite of a change load. ``schema_mode="merge"``
    adds the query's new columns to the table first; ``schema_mode="overwrite"`` with
    ``mode="overwrite"`` gives the table the query's schema. ``schema`` is the query's, when the
    caller knows it (a stream that can be read only once)."""
    root = _local_path(target)
    simple_partitions = partition_by is None or len(partition_by) <= 1
    if root is None or not simple_partitions:
        return _write_with_deltalake(
            con, query, target, mode=mode, partition_by=partition_by, configuration=configuration,
            commit_properties=commit_properties, schema_mode=schema_mode, remove=remove, file_size=file_size,
        )
    schema = plain_schema(schema) if schema is not None else _query_schema(con, query)
    exists = is_delta(root)
    if exists and mode == "error":
        raise FileExistsError(f"Delta table {root} exists already")
    table = open_delta(root) if exists else None
    if table is not None and schema_mode == "merge":
        table = _add_new_columns(table, schema)
    adds = _copy_partitions(con, query, root, file_size, partition_by[0]) if partition_by else [
        _add_action(root, f, {}) for f in _copy_to_parquet(con, query, root, root, file_size)
    ]
    rows = sum(json.loads(a.stats)["numRecords"] for a in adds)
    if table is None:
        create_table_with_add_actions(
            str(root), Schema.from_arrow(schema), adds, mode="error" if mode == "error" else "append",
            partition_by=list(partition_by) if partition_by else None,
            configuration=configuration, commit_properties=commit_properties,
        )
        return Written(rows=rows, files=len(adds))
    stamp = int(time.time() * 1000)
    removes = [RemoveAction(path=p, data_change=True, deletion_timestamp=stamp) for p in remove]
    replace_schema = mode == "overwrite" and schema_mode == "overwrite"
    table.create_write_transaction(
        [*adds, *removes], mode=mode, schema=schema if replace_schema else pa.schema(table.schema().to_arrow()),
        partition_by=list(partition_by) if partition_by else None, commit_properties=commit_properties,
    )
    return Written(rows=rows, files=len(adds), removed_files=len(removes))


def _local_path(target: Path | LakePath | str | DeltaTable) -> Path | None:
    """The table's folder on local disk, or None (object storage)."""
    if isinstance(target, DeltaTable):
        target = target.table_uri
    if isinstance(target, LakePath):
        return None
    text = str(target)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    return None if "://" in text else Path(text)


def is_local(table: DeltaTable) -> bool:
    """The table is a folder on local disk (its files can be read and replaced by DuckDB)."""
    return _local_path(table) is not None


def local_root(table: DeltaTable) -> Path:
    """The folder of a local Delta table."""
    root = _local_path(table)
    if root is None:
        raise ValueError(f"{table.table_uri} is not on local disk")
    return root


_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.-]+")


def _copy_partitions(con: duckdb.DuckDBPyConnection, query: str, root: Path, file_size: int, column: str) -> list[AddAction]:
    """One COPY per value of the partition column (a few values, e.g. the state's kinds), each into
    its ``column=value`` folder, the column left out of the files as Delta wants."""
    whole = re.fullmatch(r"SELECT \* FROM (\w+)", query.strip())
    source = whole.group(1) if whole else "partitioned_rows"  # a table already: read it once per value
    if not whole:
        con.execute(f"CREATE OR REPLACE TEMP TABLE partitioned_rows AS {query}")
    try:
        values = [row[0] for row in con.execute(f"SELECT DISTINCT {q(column)} FROM {source}").fetchall()]
        adds: list[AddAction] = []
        for value in values:
            if value is None or not _SAFE_VALUE.fullmatch(str(value)):
                raise ValueError(f"partition value {value!r} of {column!r}: only plain names are written this way")
            folder = root / f"{column}={value}"
            subset = f"SELECT * EXCLUDE ({q(column)}) FROM {source} WHERE {q(column)} = {string_literal(str(value))}"
            adds += [_add_action(root, f, {column: str(value)}) for f in _copy_to_parquet(con, subset, root, folder, file_size)]
        return adds
    finally:
        con.execute("DROP TABLE IF EXISTS partitioned_rows")


def _query_schema(con: duckdb.DuckDBPyConnection, query: str) -> pa.Schema:
    return plain_schema(con.sql(f"SELECT * FROM ({query}) LIMIT 0").to_arrow_table().schema)


def plain_type(data_type: pa.DataType) -> pa.DataType:
    """The type the lake stores (as the Parquet files DuckDB writes read back): plain strings and
    binaries, naive timestamps in microseconds, dictionaries decoded."""
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us")
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return pa.binary()
    if pa.types.is_dictionary(data_type):
        return plain_type(data_type.value_type)
    return data_type


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """:func:`plain_type` of every field."""
    return pa.schema([pa.field(f.name, plain_type(f.type)) for f in schema])


def _add_new_columns(table: DeltaTable, schema: pa.Schema) -> DeltaTable:
    stored = set(pa.schema(table.schema().to_arrow()).names)
    missing = [f for f in schema if f.name not in stored]
    if missing:
        table.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
        table = open_delta(table.table_uri)
    return table


def _copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, root: Path, folder: Path, file_size: int) -> list[Path]:
    """COPY the query into Parquet files in a hidden folder of the table, then move them into
    ``folder`` (a rename on the same disk); returns the final paths."""
    staging = root / f"_copy_{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(
            f"COPY ({query}) TO '{staging.as_posix()}' (FORMAT parquet, COMPRESSION snappy, "
            f"ROW_GROUP_SIZE_BYTES {_row_group_bytes(con)}, FILE_SIZE_BYTES {int(file_size)}, "
            "FILENAME_PATTERN 'part-{uuid}', OVERWRITE_OR_IGNORE true)"
        )
        final = []
        for written in sorted(staging.glob("*.parquet")):
            target = folder / written.name
            os.replace(written, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _row_group_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Row groups small enough that the writer's buffers (one per thread) fit the database's limit."""
    limit, threads = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchall()[0]
    return int(max(4 << 20, min(64 << 20, parse_size(limit, least=0) // (8 * max(int(threads), 1)))))


def _add_action(root: Path, path: Path, partition_values: dict[str, str | None]) -> AddAction:
    meta = pq.ParquetFile(path).metadata
    stat = path.stat()
    return AddAction(
        path=path.relative_to(root).as_posix(),
        size=stat.st_size,
        partition_values=partition_values,
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps(_file_stats(meta)),
    )


def _file_stats(meta: pq.FileMetaData) -> dict:
    """Delta's per-file statistics from the Parquet footer: rows, nulls, and a min/max bound for
    every column that has one.

    Every column deltalake indexes must have its bounds: its pyarrow datasets turn a missing
    min/max into ``column >= null``, which prunes the file from any scan filtering on that
    column (a DuckDB query with ``WHERE`` over the dataset then silently loses the file's rows).
    """
    schema = meta.schema.to_arrow_schema()
    leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    nulls: dict[str, int] = {}
    low: dict[str, object] = {}
    high: dict[str, object] = {}
    for field in schema:
        index = leaves.get(field.name)  # nested columns have several leaves: no statistics for them
        if index is None:
            continue
        count, lows, highs, complete = 0, [], [], True
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is None or not stats.has_null_count:
                complete = False
                break
            count += stats.null_count
            if stats.has_min_max:
                lows.append(stats.min)
                highs.append(stats.max)
        if not complete:
            continue
        nulls[field.name] = count
        value_low, value_high = _bounds(field.type, lows, highs)
        if value_low is not None:
            low[field.name], high[field.name] = value_low, value_high
    return {"numRecords": meta.num_rows, "minValues": low, "maxValues": high, "nullCount": nulls}


def _bounds(data_type: pa.DataType, lows: list, highs: list) -> tuple[object, object]:
    """The file's min and max as Delta writes them in JSON; a bound that is not exact is widened
    (a string's prefix, its last character raised for the max; a decimal one step of a float)."""
    if not lows:
        return None, None
    low, high = min(lows), max(highs)
    if pa.types.is_boolean(data_type) or pa.types.is_integer(data_type):
        return low, high
    if pa.types.is_date(data_type):
        return low.isoformat(), high.isoformat()
    if pa.types.is_timestamp(data_type):
        zone = "Z" if data_type.tz is not None else ""
        return (low.replace(tzinfo=None).isoformat(timespec="microseconds") + zone,
                high.replace(tzinfo=None).isoformat(timespec="microseconds") + zone)
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high)):
            return None, None
        return math.nextafter(low, -math.inf), math.nextafter(high, math.inf)
    if pa.types.is_string(data_type) and isinstance(low, str) and isinstance(high, str):
        return low[:STRING_STATS_MAX], _upper_prefix(high)
    return None, None


def _upper_prefix(value: str) -> str | None:
    """The shortest string of at most ``STRING_STATS_MAX`` characters that is at least ``value``."""
    if len(value) <= STRING_STATS_MAX:
        return value
    prefix = value[:STRING_STATS_MAX]
    while prefix and ord(prefix[-1]) >= 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def _write_with_deltalake(
    con, query, target, *, mode, partition_by, configuration, commit_properties, schema_mode, remove, file_size
) -> Written:
    """The same write through ``write_deltalake`` from a stream of batches (object storage, partitions)."""
    if remove:
        raise ValueError("replacing files is only done on local tables")
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    counted = _Counted(reader)
    write_delta(
        target, counted.reader(), mode=mode, partition_by=list(partition_by) if partition_by else None,
        configuration=configuration, commit_properties=commit_properties, schema_mode=schema_mode,
        target_file_size=file_size,
    )
    return Written(rows=counted.rows, files=0)


class _Counted:
    """A batch reader with the plain Delta types, counting the rows that pass through it."""

    def __init__(self, source: pa.RecordBatchReader) -> None:
        self.rows = 0
        self._source = source
        self.schema = plain_schema(source.schema)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self._source:
            self.rows += batch.num_rows
            yield batch.cast(self.schema)

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())


def write_reader(
    reader: pa.RecordBatchReader,
    target: Path | LakePath | str,
    *,
    mode: Literal["append", "overwrite"],
    schema_mode: Literal["merge", "overwrite"] | None = None,
    commit_properties: CommitProperties | None = None,
) -> Written:
    """Write a stream of batches (e.g. another DuckDB database's result) in one commit, in bounded
    memory: on local disk DuckDB copies the stream into Parquet files (see :func:`write_query`),
    in a database of its own held to ``WRITER_PART`` of the step's DuckDB share (the database
    producing the stream has the rest)."""
    if _local_path(target) is None:
        counted = _Counted(reader)
        write_delta(
            target, counted.reader(), mode=mode, schema_mode=schema_mode, target_file_size=FILE_SIZE,
            commit_properties=commit_properties,
        )
        return Written(rows=counted.rows, files=0)
    con = new_database(part=WRITER_PART)
    try:
        con.register("__stream", reader)
        return write_query(
            con, "SELECT * FROM __stream", target, mode=mode, schema_mode=schema_mode, schema=reader.schema,
            commit_properties=commit_properties,
        )
    finally:
        con.close()


def files_holding(table: DeltaTable, key: str, values: np.ndarray) -> tuple[list[str], int, int]:
    """The table's files whose ``key`` range (min/max statistics) holds one of the sorted ``values``,
    with their row count and the table's; a file without statistics counts as holding one."""
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    rows = actions.column("num_records").to_numpy(zero_copy_only=False)
    total = int(np.nansum(rows.astype("float64")))
    low_name, high_name = f"min.{key}", f"max.{key}"
    if low_name not in actions.column_names or len(values) == 0:
        return (paths if len(values) else []), (total if len(values) else 0), total
    low = actions.column(low_name).to_numpy(zero_copy_only=False)
    high = actions.column(high_name).to_numpy(zero_copy_only=False)
    unknown = np.isnan(low.astype("float64")) | np.isnan(high.astype("float64"))
    low = np.where(unknown, 0, low).astype(np.int64)
    high = np.where(unknown, 0, high).astype(np.int64)
    inside = np.searchsorted(values, high, side="right") - np.searchsorted(values, low, side="left") > 0
    chosen = inside | unknown
    return [p for p, c in zip(paths, chosen, strict=True) if c], int(np.nansum(rows[chosen].astype("float64"))), total


__all__ = ["Written", "files_holding", "local_root", "merge_rows", "plain_schema", "plain_type", "write_query", "write_reader"]


def merge_rows(
    table: DeltaTable,
    source: pa.Table | pa.RecordBatchReader,
    *,
    predicate: str,
    source_alias: str = "s",
    target_alias: str = "t",
    commit_properties: CommitProperties | None = None,
):
    """deltalake's MERGE of ``source`` into ``table`` (add the ``when_...`` clauses, then
    ``execute()``), streamed and held to the step's memory budget: delta-rs gets half of the
    step's share as its memory pool (DuckDB, which only streams the source meanwhile, keeps the
    rest) and spills past it where it can; its hash join cannot, so a source too big for the
    pool fails as a :class:`MemoryBudgetError` (its memory grew after deltalake 1.5)."""
    return table.merge(
        source,
        predicate,
        source_alias=source_alias,
        target_alias=target_alias,
        streamed_exec=True,
        max_spill_size=current_budget().share // 2,
        commit_properties=commit_properties,
    )
