"""Find landing files and dropped files that appeared since the last look.

The cursor remembers, per landing object, the newest partition day seen and the file names in
the last two day folders; a scan lists only those day folders and newer ones, so its cost does
not grow with the history kept in landing (on object storage: one listing per day prefix). Drop
folders are listed whole (they hold few files) and remembered by name and modification time.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from medallion_assets.engine.landing.sources import DropFolderConnection, SourceSystem
from medallion_assets.engine.storage.lake import LakeRoot, as_path, local_dir, scandir
from medallion_assets.engine.storage.paths import LOAD_TYPES, landing_object_dir, parse_landing_file

# Day folders re-listed below the newest one: an extract that lands a little late still counts.
RESCAN_DAYS = 1


@dataclass(frozen=True)
class NewFile:
    source: str
    object: str
    partition_date: date
    path: Path
    dropped: bool  # True for a file in a drop folder, not yet in landing


def _day_folders_since(load_type_dir: Path, since: date | None) -> list[tuple[date, Path]]:
    found: list[tuple[date, Path]] = []
    if not load_type_dir.is_dir():
        return found
    for year in sorted(scandir(load_type_dir), key=lambda e: e.name):
        if not (year.is_dir() and year.name.isdigit()) or (since and int(year.name) < since.year):
            continue
        for month in sorted(scandir(year.path), key=lambda e: e.name):
            if not (month.is_dir() and month.name.isdigit()):
                continue
            if since and (int(year.name), int(month.name)) < (since.year, since.month):
                continue
            for day in sorted(scandir(month.path), key=lambda e: e.name):
                if not (day.is_dir() and day.name.isdigit()):
                    continue
                try:
                    day_date = date(int(year.name), int(month.name), int(day.name))
                except ValueError:
                    continue
                if since is None or day_date >= since:
                    found.append((day_date, as_path(day.path)))
    return found


def _newest_day(object_dir: Path) -> date | None:
    """The newest day folder of an object, found by walking down the largest year, month, day."""
    newest: date | None = None
    for load_type in LOAD_TYPES:
        folder = object_dir / load_type
        parts = []
        for _ in range(3):
            if not folder.is_dir():
                break
            numeric = [e.name for e in scandir(folder) if e.is_dir() and e.name.isdigit()]
            if not numeric:
                break
            folder = folder / max(numeric, key=int)
            parts.append(int(folder.name))
        if len(parts) == 3:
            try:
                day = date(*parts)
            except ValueError:
                continue
            newest = day if newest is None or day > newest else newest
    return newest


def scan_for_new_files(data_dir: LakeRoot, systems: dict[str, SourceSystem], cursor: str | None) -> tuple[list[NewFile], str]:
    """New files since ``cursor``, and the cursor to store for the next scan."""
    state = json.loads(cursor) if cursor else {}
    landing_state: dict = state.get("landing", {})
    drop_state: dict = state.get("drops", {})
    new: list[NewFile] = []
    for system in systems.values():
        for obj in system.included_objects():
            if isinstance(system.connection, DropFolderConnection):
                new += _scan_drop_folder(data_dir, system, obj.name, obj.file_pattern or "*", drop_state)
            new += _scan_landing_object(data_dir, system.source, obj.name, landing_state)
    return new, json.dumps({"landing": landing_state, "drops": drop_state}, sort_keys=True)


def _scan_landing_object(data_dir: LakeRoot, source: str, object_name: str, landing_state: dict) -> list[NewFile]:
    key = f"{source}/{object_name}"
    entry = landing_state.get(key, {"newest": None, "seen": []})
    newest = date.fromisoformat(entry["newest"]) if entry["newest"] else None
    if newest is None:
        # A first look needs only the newest days: older ones are history, not arrivals.
        newest = _newest_day(landing_object_dir(data_dir, source, object_name))
    since = newest - timedelta(days=RESCAN_DAYS) if newest else None
    seen = set(entry["seen"])
    found: list[NewFile] = []
    listed: list[tuple[date, str]] = []
    object_dir = landing_object_dir(data_dir, source, object_name)
    for load_type in LOAD_TYPES:
        for day_date, folder in _day_folders_since(object_dir / load_type, since):
            for item in scandir(folder):
                if item.name.startswith(".") or not item.is_file():
                    continue
                parsed = parse_landing_file(as_path(item.path), source)
                if parsed is None:
                    continue
                relative = f"{load_type}/{item.name}"
                listed.append((day_date, relative))
                if relative not in seen:
                    found.append(NewFile(source, object_name, day_date, as_path(item.path), dropped=False))
    if listed or newest:
        new_newest = max([d for d, _ in listed] + ([newest] if newest else []))
        keep_from = new_newest - timedelta(days=RESCAN_DAYS)
        landing_state[key] = {
            "newest": new_newest.isoformat(),
            "seen": sorted({name for d, name in listed if d >= keep_from}),
        }
    return found


def _scan_drop_folder(data_dir: LakeRoot, system: SourceSystem, object_name: str, pattern: str, drop_state: dict) -> list[NewFile]:
    from medallion_assets.engine.storage.paths import inside

    folder = inside(local_dir(data_dir), system.connection.folder)  # type: ignore[union-attr]
    key = f"{system.source}/{object_name}"
    seen: dict[str, float] = drop_state.get(key, {})
    found: list[NewFile] = []
    if not folder.is_dir():
        return found
    current: dict[str, float] = {}
    for item in os.scandir(folder):
        if item.name.startswith(".") or not item.is_file() or not fnmatch.fnmatch(item.name, pattern):
            continue
        mtime = item.stat().st_mtime
        current[item.name] = mtime
        if seen.get(item.name) != mtime:
            dropped_on = datetime.fromtimestamp(mtime, tz=UTC).date()
            found.append(NewFile(system.source, object_name, dropped_on, Path(item.path), dropped=True))
    drop_state[key] = current
    return found
