"""Project-wide settings from ``project.yaml`` in the metadata folder."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from medallion_assets.engine.metadata import StrictModel, load_model, metadata_root
from medallion_assets.engine.storage.lake import LakeRoot, as_path
from medallion_assets.engine.storage.paths import LOAD_TYPES


class PartitionSettings(StrictModel):
    start_date: date | Literal["first_landing_day"] = Field(
        description=(
            "first daily partition: a date, or first_landing_day for the first day that has landing files "
            "under the data root (the sample's setting, so its partitions start on its first day)"
        )
    )
    start_date_when_empty: date | None = Field(
        default=None,
        description="with start_date first_landing_day: the first partition while nothing has landed yet (default today)",
    )
    timezone: str = Field(default="UTC", description="time zone of the partition boundaries")

    @property
    def start_without_data(self) -> date:
        """The first partition while nothing has landed: the fixed date, else start_date_when_empty, else today."""
        if isinstance(self.start_date, date):
            return self.start_date
        return self.start_date_when_empty or date.today()

    def resolve_start(self, *, data_dir: LakeRoot, sources: list[str]) -> date:
        """The first partition: the fixed date, or the first landed day of ``sources`` under ``data_dir``."""
        if isinstance(self.start_date, date):
            return self.start_date
        return first_landing_day(data_dir, sources=sources) or self.start_without_data


class ScheduleSettings(StrictModel):
    cron: str = Field(description="cron expression of the schedule")
    timezone: str = Field(default="UTC", description="time zone the cron expression is read in")


class SchedulesSettings(StrictModel):
    daily: ScheduleSettings = Field(
        default=ScheduleSettings(cron="0 2 * * *"), description="medallion_daily_schedule: the previous day's partition"
    )
    maintenance: ScheduleSettings = Field(
        default=ScheduleSettings(cron="0 4 * * 0"), description="maintenance_schedule: compaction and vacuum"
    )


class ChecksSettings(StrictModel):
    freshness_hours: float = Field(
        default=36.0, description="freshness policy of every base and curated table: not updated for this long = stale"
    )


class ProjectSettings(StrictModel):
    partitions: PartitionSettings
    schedules: SchedulesSettings = SchedulesSettings()
    checks: ChecksSettings = ChecksSettings()
    memory_limit: str | None = Field(
        default=None,
        description=(
            "memory budget of a run on one host, shared by the steps running at once (e.g. 3GB); "
            "MEDALLION_MEMORY_LIMIT overrides it; unset: half of the host's memory"
        ),
    )


def load_project_settings(path: Path | None = None) -> ProjectSettings:
    """``project.yaml`` of the metadata folder in use (``$MEDALLION_METADATA_DIR`` or the sample)."""
    return _load_project_settings(Path(path) if path else metadata_root() / "project.yaml")


@lru_cache(maxsize=8)
def _load_project_settings(path: Path) -> ProjectSettings:
    return load_model(path, ProjectSettings)


def first_landing_day(data_dir: LakeRoot, *, sources: list[str]) -> date | None:
    """The earliest day with a visible landing file of any of ``sources`` (None when nothing has landed)."""
    best: date | None = None
    landing = as_path(data_dir) / "landing"
    for source in sources:
        for load_dir in sorted(landing.glob(f"{source}/*/*")):
            if load_dir.name not in LOAD_TYPES or not load_dir.is_dir():
                continue
            for years in sorted(p for p in load_dir.iterdir() if p.is_dir() and p.name.isdigit()):
                day = _first_day_with_files(years)
                if day is not None:
                    best = day if best is None or day < best else best
                    break
    return best


def _first_day_with_files(year_dir: Path) -> date | None:
    for month_dir in sorted(p for p in year_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        for day_dir in sorted(p for p in month_dir.iterdir() if p.is_dir() and p.name.isdigit()):
            if any(not f.name.startswith(".") for f in day_dir.iterdir()):
                try:
                    return date(int(year_dir.name), int(month_dir.name), int(day_dir.name))
                except ValueError:
                    continue
    return None
