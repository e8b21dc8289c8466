"""Delta table helpers shared by dimensions and facts: paths, reads, a writer lock, results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from medallion_assets.engine.curated.sql import is_delta_table
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.storage.files import exclusive_lock
from medallion_assets.engine.storage.lake import LakeRoot, as_path, open_delta
from medallion_assets.engine.storage.scan import described

UNKNOWN_ID = -1  # the surrogate id (and calendar key) of the unknown member
LOW_DATE = datetime(1900, 1, 1)
TS = pa.timestamp("us")


def curated_path(data_dir: LakeRoot, table: str) -> Path:
    return as_path(data_dir) / "curated" / table


def read_delta(path: Path) -> pa.Table | None:
    """The latest version of a Delta table as Arrow, or ``None`` when there is none."""
    if not is_delta_table(path):
        return None
    return open_delta(path).to_pyarrow_table()


@contextlib.contextmanager
def table_lock(data_dir: LakeRoot, table: str) -> Iterator[None]:
    """Serialise read-modify-write cycles on one curated table across processes.

    Delta commits are atomic, but a dimension rewrite racing with a fact appending inferred
    members could otherwise drop the members; the lock makes the second writer wait.
    """
    with exclusive_lock(as_path(data_dir) / "curated" / "_locks" / f"{table}.lock"):
        yield


def default_for(arrow_type: pa.DataType) -> Any:
    """Type-appropriate value of the unknown member: -1, 'Unknown', 0, false, 1900-01-01."""
    if pa.types.is_integer(arrow_type):
        return UNKNOWN_ID
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "Unknown"
    if pa.types.is_floating(arrow_type):
        return 0.0
    if pa.types.is_decimal(arrow_type):
        return Decimal(0)
    if pa.types.is_boolean(arrow_type):
        return False
    if pa.types.is_date(arrow_type):
        return date(1900, 1, 1)
    if pa.types.is_timestamp(arrow_type):
        return LOW_DATE
    return None


def finish(
    table: str,
    path: Path,
    *,
    write_pattern: str | None = None,
    rows_read: int | None = None,  # rows the SQL returned (for an incremental fact: of the partition's day)
    inserted: int,
    updated: int,
    soft_deleted: int = 0,
    replaced: int = 0,
    unmatched: dict[str, int] | None = None,
    inferred: dict[str, int] | None = None,
    warnings: list[str] | None = None,
    written: list[str] | None = None,
) -> LoadOutcome:
    """The outcome of a curated load, with the committed table's row count, version, schema and preview."""
    outcome = LoadOutcome(
        layer="curated",
        table=table,
        write_behaviour=write_pattern,
        rows_read=rows_read,
        inserted=inserted,
        updated=updated,
        soft_deleted=soft_deleted,
        replaced=replaced,
        path=str(path),
        unmatched=dict(unmatched or {}),
        inferred=dict(inferred or {}),
        warnings=tuple(warnings or ()),
        written=tuple(written if written is not None else [table]),
    )
    return described(outcome, open_delta(path), row_count=True)
