from datetime import UTC, datetime

import dagster as dg

from medallion_assets.definitions import defs


def test_daily_schedule_targets_the_previous_day():
    schedule = defs.resolve_schedule_def("medallion_daily_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 1, 2, 0, tzinfo=UTC))
    request = schedule(context)
    assert request.partition_key == "2026-02-28"
    assert schedule.job_name == "medallion_daily"
