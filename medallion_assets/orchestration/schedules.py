"""Schedules for the cron path."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from medallion_assets.engine.project import load_project_settings


def build_daily_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    settings = load_project_settings().schedules.daily

    @dg.schedule(
        name="medallion_daily_schedule",
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        job=job,
        description="Runs medallion_daily for the previous day's partition.",
    )
    def medallion_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        previous_day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return dg.RunRequest(run_key=f"medallion_daily:{previous_day}", partition_key=previous_day)

    return medallion_daily_schedule
