"""The data root and the landing path convention (docs/design.md).

Landing files live at
``landing/<source>/<object>/<load_type>/<yyyy>/<mm>/<dd>/<object>_<load_type>_<yyyymmddTHHMMSS>.<ext>``.
The date folders are the partition (the day the extract belongs to); the timestamp in the
name is when the source was read. Files whose name starts with a dot are in-flight temporary
files and are never part of the landing layer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from medallion_assets.engine.sqltext import is_snake_case
from medallion_assets.engine.storage.lake import LakePath, LakeRoot, as_path, is_uri, open_lake, scandir

DATA_DIR_ENV = "MEDALLION_DATA_DIR"
LOAD_TYPES = ("full", "delta", "keys")
FORMATS = ("csv", "parquet", "json")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S"

_LANDING_FILE = re.compile(
    r"^(?P<object>[a-z][a-z0-9_]*)_(?P<load_type>full|delta|keys)_(?P<ts>\d{8}T\d{6})\.(?P<ext>csv|parquet|json)$"
)


class PathOutsideDataRoot(ValueError):
    """A path from metadata or user input would leave the data root."""


def repository_root() -> Path:
    """The checkout this package was installed from (editable installs), used for defaults."""
    return Path(__file__).resolve().parents[3]


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: an explicit value, else ``$MEDALLION_DATA_DIR``, else ``data/`` of the checkout.

    Read at call time, never at import time, so tests and resources can point it elsewhere. A URI
    (``s3://bucket/prefix``) gives a :class:`~medallion_assets.engine.storage.lake.LakePath` (see lake.py).
    """
    value = explicit if explicit not in (None, "") else os.environ.get(DATA_DIR_ENV)
    if value in (None, ""):
        return repository_root() / "data"
    if isinstance(value, LakePath):
        return value
    if is_uri(value):
        return open_lake(str(value))
    return Path(value).expanduser().resolve()


def inside(root: Path, relative: str | os.PathLike) -> Path:
    """Join ``relative`` to ``root`` and refuse anything that escapes it (``..``, absolute, symlinks)."""
    if isinstance(root, LakePath):
        return _inside_lake(root, relative)
    root_resolved = Path(root).resolve()
    candidate = Path(relative)
    if candidate.is_absolute():
        raise PathOutsideDataRoot(f"absolute path {str(relative)!r} is not allowed; give a path inside the data root")
    resolved = (root_resolved / candidate).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise PathOutsideDataRoot(f"path {str(relative)!r} leaves the data root {root_resolved}")
    return resolved


def _inside_lake(root: LakePath, relative: str | os.PathLike) -> LakePath:
    """Object keys have no symlinks: refusing absolute keys and ``..`` is enough."""
    text = str(relative)
    if text.startswith("/") or is_uri(text):
        raise PathOutsideDataRoot(f"absolute path {text!r} is not allowed; give a path inside the data root")
    try:
        return root / text
    except ValueError:
        raise PathOutsideDataRoot(f"path {text!r} leaves the data root {root}") from None


@dataclass(frozen=True)
class LandingFile:
    source: str
    object: str
    load_type: str
    partition_date: date
    extracted_at: datetime
    format: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def landing_object_dir(data_dir: LakeRoot, source: str, object_name: str) -> Path:
    return as_path(data_dir) / "landing" / source / object_name


def landing_partition_dir(data_dir: LakeRoot, source: str, object_name: str, load_type: str, partition_date: date) -> Path:
    return (
        landing_object_dir(data_dir, source, object_name)
        / load_type
        / f"{partition_date.year:04d}"
        / f"{partition_date.month:02d}"
        / f"{partition_date.day:02d}"
    )


def landing_file_name(object_name: str, load_type: str, extracted_at: datetime, fmt: str) -> str:
    if load_type not in LOAD_TYPES:
        raise ValueError(f"unknown load type {load_type!r}; expected one of {', '.join(LOAD_TYPES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return f"{object_name}_{load_type}_{extracted_at.strftime(TIMESTAMP_FORMAT)}.{fmt}"


def landing_file_path(
    data_dir: LakeRoot, source: str, object_name: str, load_type: str, partition_date: date, *, extracted_at: datetime, fmt: str
) -> Path:
    return landing_partition_dir(data_dir, source, object_name, load_type, partition_date) / landing_file_name(
        object_name, load_type, extracted_at, fmt
    )


def parse_landing_file(path: Path, source: str | None = None) -> LandingFile | None:
    """Parse a landing file path; ``None`` for anything that is not a landing file (temp files included)."""
    path = as_path(path)
    match = _LANDING_FILE.match(path.name)
    if not match:
        return None
    try:
        dd, mm, yyyy, load_type_dir, object_dir = (
            path.parent.name,
            path.parent.parent.name,
            path.parent.parent.parent.name,
            path.parent.parent.parent.parent.name,
            path.parent.parent.parent.parent.parent.name,
        )
        partition_date = date(int(yyyy), int(mm), int(dd))
    except (ValueError, IndexError):
        return None
    if load_type_dir != match["load_type"] or object_dir != match["object"]:
        return None
    source_name = source or path.parents[5].name
    return LandingFile(
        source=source_name,
        object=match["object"],
        load_type=match["load_type"],
        partition_date=partition_date,
        extracted_at=datetime.strptime(match["ts"], TIMESTAMP_FORMAT),
        format=match["ext"],
        path=path,
    )


def list_landing_files(
    data_dir: LakeRoot,
    source: str,
    object_name: str,
    *,
    partition_date: date | None = None,
    load_types: tuple[str, ...] = LOAD_TYPES,
) -> list[LandingFile]:
    """Landing files of one object, ordered by (partition date, extract timestamp, load type)."""
    files: list[LandingFile] = []
    for load_type in load_types:
        if partition_date is not None:
            folders = [landing_partition_dir(data_dir, source, object_name, load_type, partition_date)]
        else:
            base = landing_object_dir(data_dir, source, object_name) / load_type
            folders = sorted(p for p in base.glob("*/*/*") if p.is_dir()) if base.is_dir() else []
        for folder in folders:
            if not folder.is_dir():
                continue
            for entry in scandir(folder):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                parsed = parse_landing_file(as_path(entry.path), source)
                if parsed is not None and parsed.object == object_name:
                    files.append(parsed)
    order = {t: i for i, t in enumerate(LOAD_TYPES)}
    files.sort(key=lambda f: (f.partition_date, f.extracted_at, order[f.load_type], f.name))
    return files


TABLE_LAYERS = ("base", "curated")


def list_delta_tables(data_dir: LakeRoot) -> list[tuple[str, str, Path]]:
    """(layer, table, path) of every Delta table under base/ and curated/.

    Folders starting with ``_`` or ``.`` hold the engine's own state, locks and quarantine.
    """
    found = []
    for layer in TABLE_LAYERS:
        folder = as_path(data_dir) / layer
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(("_", ".")) or not is_snake_case(entry.name):
                continue
            if (entry / "_delta_log").is_dir():
                found.append((layer, entry.name, entry.resolve()))
    return found
