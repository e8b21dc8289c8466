"""Delta table maintenance: compact small files, then vacuum files no version needs any more."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from medallion_assets.engine.storage.lake import LakeRoot, as_path, compact, open_delta
from medallion_assets.engine.storage.paths import list_delta_tables


@dataclass(frozen=True)
class FileStats:
    active_files: int
    active_bytes: int
    disk_files: int
    disk_bytes: int


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    before: FileStats
    after: FileStats
    files_compacted: int
    files_vacuumed: int
    version: int


def delta_tables(data_dir: LakeRoot) -> list[Path]:
    """Every Delta table of the base and curated layers."""
    return [path for _, _, path in list_delta_tables(data_dir)]


def file_stats(path: Path) -> FileStats:
    table = open_delta(path)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    active_bytes = sum(actions.get("size_bytes", []))
    on_disk = [p for p in as_path(path).rglob("*.parquet") if "_delta_log" not in p.parts]
    return FileStats(
        active_files=len(actions.get("path", [])),
        active_bytes=int(active_bytes),
        disk_files=len(on_disk),
        disk_bytes=sum(p.stat().st_size for p in on_disk),
    )


def maintain_table(path: Path, *, retention_days: float) -> MaintenanceResult:
    """Compact, then vacuum files unreferenced for longer than ``retention_days``.

    Both are Delta commits of their own: a reader sees the table before or after, and time travel
    stays possible within the retention.
    """
    before = file_stats(path)
    table = open_delta(path)
    compacted = compact(table)
    table = open_delta(path)
    vacuumed = table.vacuum(
        retention_hours=int(retention_days * 24), enforce_retention_duration=False, dry_run=False
    )
    table = open_delta(path)
    return MaintenanceResult(
        table=f"{as_path(path).parent.name}.{as_path(path).name}",
        before=before,
        after=file_stats(path),
        files_compacted=int(compacted.get("numFilesRemoved", 0)),
        files_vacuumed=len(vacuumed),
        version=table.version(),
    )
