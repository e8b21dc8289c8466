"""Delta tables as DuckDB views over their current Parquet files.

Why: scanning a Delta table through ``to_pyarrow_dataset()`` decodes every column of every row in
pyarrow and hands the batches over one by one; DuckDB's own Parquet reader pushes projections and
filters down, reads in parallel and is several times faster. That is only exact when the files
alone carry the rows, so tables with deletion vectors or column mapping fall back to Arrow, and
partition columns (absent from the files) are added back as constants per partition.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from medallion_assets.engine.memory import connect
from medallion_assets.engine.outcome import PREVIEW_ROWS, LoadOutcome, columns_of
from medallion_assets.engine.sqltext import quote_identifier, string_literal

__all__ = ["arrow_encoded", "connect", "native_files", "register_delta", "stream"]

_UNSAFE_FEATURES = {"deletionVectors", "columnMapping"}


_listings: dict[tuple[str, str, int], list[tuple[str, dict[str, str | None]]] | None] = {}
_listings_lock = threading.Lock()


def native_files(dt: DeltaTable) -> list[tuple[str, dict[str, str | None]]] | None:
    """Local paths of the current version's data files with their partition values, or None when
    the files alone do not give the table's rows (remote storage, deletion vectors, column mapping).
    A table version never changes, so its listing is cached (a load reads the target thrice); the
    table id is part of the key because a table deleted and created again restarts at version 0."""
    key = (dt.table_uri, dt.metadata().id, dt.version())
    with _listings_lock:
        if key in _listings:
            return _listings[key]
    files = _native_files(dt)
    with _listings_lock:
        if len(_listings) > 256:
            _listings.clear()
        _listings[key] = files
    return files


def _native_files(dt: DeltaTable) -> list[tuple[str, dict[str, str | None]]] | None:
    uri = urlparse(dt.table_uri)
    if uri.scheme not in ("", "file"):
        return None
    protocol = dt.protocol()
    if _UNSAFE_FEATURES & set(protocol.reader_features or []):
        return None
    if dt.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        return None
    root = Path(unquote(uri.path)) if uri.scheme == "file" else Path(dt.table_uri)
    partitions = list(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    values = {c: actions.column(f"partition.{c}").to_pylist() for c in partitions}
    files = []
    for i, path in enumerate(paths):
        local = Path(unquote(path))
        files.append((str(local if local.is_absolute() else root / local), {c: values[c][i] for c in partitions}))
    return files


def register_delta(
    con: duckdb.DuckDBPyConnection,
    name: str,
    dt: DeltaTable,
    split: tuple[str, tuple[str, ...]] | None = None,
    only: set[str] | None = None,
) -> None:
    """``name`` becomes a view of the Delta table's current rows (every column of its schema).

    ``split=(column, values)``, for a table partitioned by ``column``, also defines one view
    ``<name>__<value>`` per value (snake_case), reading only that partition's files."""
    files = native_files(dt)
    if only is not None and files is not None:  # some of the files (local paths), e.g. those a change rewrites
        files = [(path, values) for path, values in files if path in only]
        if not files:
            con.register(f"{name}_proto", pa.schema(dt.schema().to_arrow()).empty_table())
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_proto")
            return
    schema = dt.schema().to_arrow()
    schema = pa.schema(schema)  # arro3 -> pyarrow
    if files is None or not files:
        con.register(f"{name}_arrow", dt.to_pyarrow_dataset())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_arrow")
        if split is not None:
            column, wanted = split
            for value in wanted:
                condition = f"{quote_identifier(column)} = {string_literal(value)}"
                con.execute(f"CREATE OR REPLACE TEMP VIEW {name}__{value} AS SELECT * FROM {name} WHERE {condition}")
        return
    partitions = list(dt.metadata().partition_columns)
    groups: dict[tuple, list[str]] = {}
    for path, values in files:
        groups.setdefault(tuple(values.get(c) for c in partitions), []).append(path)
    con.register(f"{name}_proto", schema.empty_table())
    parts = []
    for values, paths in groups.items():
        listing = "[" + ", ".join(string_literal(p) for p in paths) + "]"
        consts = "".join(
            f", CAST({'NULL' if v is None else string_literal(v)} AS {_duck_type(con, name, c)}) AS {quote_identifier(c)}"
            for c, v in zip(partitions, values, strict=True)
        )
        parts.append(f"SELECT *{consts} FROM read_parquet({listing}, union_by_name = true, hive_partitioning = false)")
    # Columns of the schema that no file holds yet (added later) come from the typed empty proto.
    union = " UNION ALL BY NAME ".join(parts + [f"SELECT * FROM {name}_proto"])
    columns = ", ".join(quote_identifier(f.name) for f in schema)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {columns} FROM ({union})")
    if split is not None:
        column, wanted = split
        index = partitions.index(column)
        for value in wanted:
            chosen = [part for part, values in zip(parts, groups, strict=True) if values[index] == value]
            union = " UNION ALL BY NAME ".join(chosen + [f"SELECT * FROM {name}_proto"])
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name}__{value} AS SELECT {columns} FROM ({union})")


def _duck_type(con: duckdb.DuckDBPyConnection, name: str, column: str) -> str:
    (type_name,) = con.execute(
        f"SELECT column_type FROM (DESCRIBE SELECT {quote_identifier(column)} FROM {name}_proto)"
    ).fetchall()[0]
    return type_name


def arrow_encoded(relation: duckdb.DuckDBPyRelation, columns: tuple[str, ...], batch_rows: int = 1 << 17) -> pa.Table:
    """The relation as an Arrow table whose string ``columns`` are dictionary-encoded batch by batch:
    a landing file's path repeated on a million rows takes a few bytes a row instead of ~80.
    Delta writes and DuckDB reads treat such columns as plain strings."""
    reader = relation.to_arrow_reader(batch_rows)
    batches = []
    for batch in reader:
        arrays = [
            pc.dictionary_encode(array) if name in columns and pa.types.is_string(array.type) else array
            for name, array in zip(batch.schema.names, batch.columns, strict=True)
        ]
        batches.append(pa.RecordBatch.from_arrays(arrays, names=batch.schema.names))
    if not batches:
        return reader.schema.empty_table()
    return pa.Table.from_batches(batches)


BATCH_ROWS = 1 << 17  # rows per Arrow batch streamed from DuckDB into a Delta writer


def stream(con: duckdb.DuckDBPyConnection, query: str) -> pa.RecordBatchReader:
    """The query's rows as a stream of Arrow batches: a Delta writer takes them one at a time."""
    return con.sql(query).to_arrow_reader(BATCH_ROWS)


def described(outcome: LoadOutcome, target: DeltaTable | None, *, row_count: bool = False) -> LoadOutcome:
    """The outcome with the stored table's version, schema, a five-row preview and, asked for, its
    row count (from the Parquet footers). The preview goes through DuckDB's Parquet reader, since
    pyarrow's ``head()`` decodes a whole file."""
    if target is None:
        return outcome
    schema = pa.schema(target.schema().to_arrow())
    con = connect()
    try:
        register_delta(con, "preview_src", target)
        preview = con.sql(f"SELECT * FROM preview_src LIMIT {PREVIEW_ROWS}").to_arrow_table()
    finally:
        con.close()
    try:
        preview = preview.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    rows = target.to_pyarrow_dataset().count_rows() if row_count else outcome.row_count
    return replace(outcome, delta_version=target.version(), columns=columns_of(schema), preview=preview, row_count=rows)
