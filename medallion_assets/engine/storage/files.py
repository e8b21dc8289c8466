"""Atomic file writes: a reader sees the old file, the new file, or nothing; never half a file.

Data is written to a dot-prefixed temporary file in the destination folder, flushed to disk,
then renamed over the final name (``os.replace`` is atomic on one file system). Landing readers
skip dot-files, so a crash mid-write leaves only an ignored temporary file behind. On object
storage the temporary file is local and one upload writes the final key (an object appears whole
when its upload completes), so no temporary object is ever visible in the lake.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from medallion_assets.engine.memory import new_database
from medallion_assets.engine.sqltext import path_literal
from medallion_assets.engine.storage.lake import LakePath, local_copy, local_lock_file, upload_file

TEMP_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it is renamed to ``final``."""
    if isinstance(final, LakePath):
        with _uploaded_path(final) as temp:
            yield temp
        return
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


@contextlib.contextmanager
def _uploaded_path(final: LakePath) -> Iterator[Path]:
    """A local temporary file that is uploaded to ``final`` once the caller has written it."""
    with tempfile.TemporaryDirectory(prefix="medallion-write-") as folder:
        temp = Path(folder) / final.name
        yield temp
        upload_file(temp, final)


def copy_file_atomic(source: Path, final: Path) -> None:
    with atomic_path(final) as temp, local_copy(source) as local, open(local, "rb") as src, open(temp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def write_table_file(table: pa.Table, path: Path, fmt: str, options: dict[str, Any] | None = None) -> None:
    """Write an Arrow table as csv, parquet or json (newline-delimited records), atomically."""
    options = dict(options or {})
    with atomic_path(path) as temp:
        if fmt == "parquet":
            pq.write_table(table, temp, compression=options.get("compression", "zstd"))
        elif fmt == "csv":
            write_options = pacsv.WriteOptions(
                include_header=options.get("header", True),
                delimiter=options.get("delimiter", ","),
            )
            pacsv.write_csv(table, temp, write_options=write_options)
        elif fmt == "json":
            _write_ndjson(table, temp)
        else:
            raise ValueError(f"unknown file format {fmt!r}; expected csv, parquet or json")


def _write_ndjson(table: pa.Table, temp: Path) -> None:

    con = new_database()
    try:
        con.register("batch", table)
        # COPY ... TO takes no prepared parameter for the file name: the path is pasted as a literal.
        con.execute(f"COPY batch TO {path_literal(temp)} (FORMAT json)")
    finally:
        con.close()


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_file`` (created if needed) across processes."""
    lock_file = local_lock_file(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
