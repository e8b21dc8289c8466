"""The daily partitions shared by landing, base and incremental facts.

Built when the definitions are built (never at import time), from ``project.yaml`` of the
metadata folder in use and, for ``start_date: first_landing_day``, from the data root.
"""

from __future__ import annotations

import dagster as dg

from medallion_assets.engine.landing.sources import load_sources
from medallion_assets.engine.metadata import metadata_root
from medallion_assets.engine.project import load_project_settings
from medallion_assets.engine.storage.paths import resolve_data_dir


def daily_partitions() -> dg.DailyPartitionsDefinition:
    settings = load_project_settings().partitions
    sources = sorted(load_sources(metadata_root() / "sources"))
    start = settings.resolve_start(data_dir=resolve_data_dir(), sources=sources)
    # end_offset=1 makes today's partition available, so a day can be loaded while it runs.
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone=settings.timezone, end_offset=1)
