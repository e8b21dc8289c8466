"""Project-wide settings from ``metadata/project.yaml``."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from medallion_assets.engine.metadata import StrictModel, load_model, metadata_root


class PartitionSettings(StrictModel):
    start_date: date
    timezone: str = "UTC"


class ScheduleSettings(StrictModel):
    cron: str
    timezone: str = "UTC"


class SchedulesSettings(StrictModel):
    daily: ScheduleSettings = ScheduleSettings(cron="0 2 * * *")
    maintenance: ScheduleSettings = ScheduleSettings(cron="0 4 * * 0")


class ChecksSettings(StrictModel):
    freshness_hours: float = 36.0
    """Freshness policy of every base and curated table: not updated for this long means stale."""


class ProjectSettings(StrictModel):
    partitions: PartitionSettings
    schedules: SchedulesSettings = SchedulesSettings()
    checks: ChecksSettings = ChecksSettings()


@lru_cache(maxsize=8)
def load_project_settings(path: Path | None = None) -> ProjectSettings:
    return load_model(path or metadata_root() / "project.yaml", ProjectSettings)
