"""The serving database ``<data root>/warehouse.duckdb``: schemas ``base`` and ``curated`` with one
view per Delta table over the Parquet files of the table's latest committed version.

Views use ``read_parquet`` with absolute paths, so any DuckDB client (CLI, Python, a BI tool)
opens the file offline without the delta extension. A refresh builds a complete new database
file and renames it over the old one under an exclusive lock: concurrent refreshes queue, and a
reader sees the old or the new database, never half of one.

With the lake on object storage the database file stays on local disk, in the lake's local
directory (``$MEDALLION_LOCAL_DIR``, see lake.py), and holds tables, not views: DuckDB cannot read
``s3://`` offline (no ``httpfs`` extension), so each refresh copies every table's latest version
into the file through Arrow. The file is then a snapshot as of the last refresh.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
from deltalake import DeltaTable

from medallion_assets.engine.sqltext import qualified, string_literal
from medallion_assets.engine.storage.files import atomic_path, exclusive_lock
from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_remote, local_dir, open_delta
from medallion_assets.engine.storage.paths import TABLE_LAYERS, list_delta_tables

DATABASE = "warehouse.duckdb"


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return str(Path(unquote(parsed.path) if parsed.scheme else uri).resolve())
    return uri


def _create_view(con: duckdb.DuckDBPyConnection, schema: str, table: str, path: Path) -> None:
    dt = open_delta(path)
    if is_remote(path):
        _copy_table(con, qualified(schema, table), dt)
        return
    files = [_local_path(uri) for uri in dt.file_uris()]
    target = qualified(schema, table)
    if not files:
        # An empty table has no Parquet file to read; keep its columns as an empty table.
        empty = dt.to_pyarrow_dataset().schema.empty_table()
        con.register("__empty", empty)
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM __empty")
        con.unregister("__empty")
        return
    options = ["union_by_name = true"]
    if dt.metadata().partition_columns:
        options.append("hive_partitioning = true")
    file_list = "[" + ", ".join(string_literal(f) for f in files) + "]"
    con.execute(f"CREATE VIEW {target} AS SELECT * FROM read_parquet({file_list}, {', '.join(options)})")


def _copy_table(con: duckdb.DuckDBPyConnection, target: str, dt: DeltaTable) -> None:
    """A remote table becomes a table of the database, read through Arrow (no httpfs offline)."""
    con.register("__data", dt.to_pyarrow_dataset())
    try:
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM __data")
    finally:
        con.unregister("__data")


def refresh_serving_views(data_dir: LakeRoot, tables: list[str] | None = None) -> Path:
    """Rebuild ``<data_dir>/warehouse.duckdb`` so every view shows its table's latest version.

    ``tables`` (``"curated.dim_customer"`` or bare names) are the tables known to have changed;
    they must exist. Every table found is (re)described either way, which keeps the database a
    pure function of the Delta tables on disk.
    """
    data_dir = as_path(data_dir).resolve()
    home = local_dir(data_dir)
    home.mkdir(parents=True, exist_ok=True)
    database = home / DATABASE
    found = list_delta_tables(data_dir)
    if tables:
        names = {f"{s}.{t}" for s, t, _ in found} | {t for _, t, _ in found}
        missing = [t for t in tables if t not in names]
        if missing:
            raise FileNotFoundError(f"no Delta table for {', '.join(missing)} under {data_dir}/base or /curated")
    with exclusive_lock(home / f"{DATABASE}.lock"):
        with atomic_path(database) as temp:
            con = duckdb.connect(str(temp))
            try:
                for schema in TABLE_LAYERS:
                    con.execute(f"CREATE SCHEMA {schema}")
                for schema, table, path in list_delta_tables(data_dir):
                    _create_view(con, schema, table, path)
                con.execute("CHECKPOINT")
            finally:
                con.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{temp}.wal")
            # A write-ahead log left by a client of the old file must not be replayed onto the new one.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{database}.wal")
    return database
