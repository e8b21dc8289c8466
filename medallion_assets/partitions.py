"""The daily partitions shared by landing, base and incremental facts."""

from __future__ import annotations

import dagster as dg

from medallion_assets.engine.project import load_project_settings


def build_daily_partitions() -> dg.DailyPartitionsDefinition:
    settings = load_project_settings().partitions
    # end_offset=1 makes today's partition available, so a day can be loaded while it runs.
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=1
    )


daily_partitions = build_daily_partitions()
