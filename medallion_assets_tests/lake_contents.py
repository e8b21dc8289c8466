"""What a lake holds, as comparable rows: shared by the crash trials and the lake-on-S3 tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from medallion_assets.engine.base.reader import read_landing_file
from medallion_assets.engine.landing.sources import load_sources
from medallion_assets.engine.storage.lake import LakePath
from medallion_assets.engine.storage.paths import list_landing_files

# Set when a row is written, so the only columns that differ between two clean runs.
LOAD_STAMPS = frozenset({"lh_created_date", "lh_modified_date"})


def rows(table: pa.Table, ignore: frozenset[str] = frozenset()) -> list[tuple]:
    """The column names, then every row, sorted: equal for equal contents in any order."""
    columns = sorted(c for c in table.column_names if c not in ignore)
    data = [table.column(c).to_pylist() for c in columns]
    return [tuple(columns)] + sorted(zip(*data, strict=True), key=repr)


def landing_contents(data_dir: Path | LakePath) -> dict[str, list[tuple]]:
    """Rows of every landing file a reader would list, by path relative to the data root."""
    out = {}
    for system in load_sources().values():
        for obj in system.objects.values():
            for landing in list_landing_files(data_dir, system.source, obj.name):
                table = read_landing_file(landing.path, landing.format, obj.read_options)
                out[landing.path.relative_to(data_dir).as_posix()] = rows(table)
    return out
