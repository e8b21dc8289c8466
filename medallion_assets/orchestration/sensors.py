"""Sensors: new landing files and drops start runs; failed runs send a notification."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

import dagster as dg

from medallion_assets.common.observability import LANDING_PATHS_KEY
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.scan import NewFile, scan_for_new_files
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.notify import FailureNotice, NotificationFailed, post_json
from medallion_assets.engine.storage.lake import relative_name
from medallion_assets.landing.assets import landing_asset_key

WEBHOOK_URL_ENV = "MEDALLION_WEBHOOK_URL"
UI_URL_ENV = "MEDALLION_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"


def _already_recorded(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, data_root, files: list[NewFile]) -> bool:
    """True when the landing asset's last materialization of that day already lists these files
    (the files came from one of our own runs, which loaded them downstream too)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return False
    entry = records[0].asset_materialization.metadata.get(LANDING_PATHS_KEY)
    recorded = set(entry.value) if entry is not None and isinstance(entry.value, list) else set()
    return all(relative_name(f.path, data_root) in recorded for f in files)


def build_landing_sensor(
    *,
    systems: Mapping[str, SourceSystem],
    downstream: Mapping[dg.AssetKey, Sequence[dg.AssetKey]],
    partitions_def: dg.PartitionsDefinition,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """Requests a landing-and-base run for exactly the (object, day) pairs that got new files."""
    targets = sorted({key for key in downstream} | {k for keys in downstream.values() for k in keys}, key=str)

    @dg.sensor(
        name="landing_files_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        target=targets,
        description="New files in landing or in a drop folder -> landing and base for that day.",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        root = lakehouse.root
        first_tick = context.cursor is None
        new_files, cursor = scan_for_new_files(root, dict(systems), context.cursor)
        if first_tick:
            return dg.SensorResult(
                cursor=cursor,
                skip_reason=dg.SkipReason(f"first tick: remembered {len(new_files)} existing files; watching for new ones"),
            )
        grouped: dict[tuple[str, str, str], list[NewFile]] = defaultdict(list)
        for item in new_files:
            grouped[(item.source, item.object, item.partition_date.isoformat())].append(item)
        valid_partitions = set(partitions_def.get_partition_keys(dynamic_partitions_store=context.instance))
        requests = []
        for (source, object_name, partition), files in sorted(grouped.items()):
            key = landing_asset_key(source, object_name)
            if key not in downstream:  # an object switched off with include: false
                continue
            if partition not in valid_partitions:
                context.log.warning(f"{key.to_user_string()}: files for {partition} are outside the partitions; ignored")
                continue
            landed = [f for f in files if not f.dropped]
            if landed and len(landed) == len(files) and _already_recorded(context.instance, key, partition, root, landed):
                continue
            fingerprint = hashlib.sha1(
                "\n".join(
                    sorted(
                        f"{relative_name(f.path, root)}:{f.path.stat().st_mtime_ns if f.path.exists() else 0}"
                        for f in files
                    )
                ).encode()
            ).hexdigest()[:16]
            requests.append(
                dg.RunRequest(
                    run_key=f"{key.to_user_string()}:{partition}:{fingerprint}",
                    asset_selection=[key, *downstream.get(key, [])],
                    partition_key=partition,
                    tags={"medallion/trigger": "landing_files_sensor"},
                )
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return landing_files_sensor


def _root_cause(error) -> str:
    """The innermost error of a Dagster error chain: the user's exception, not the wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


@dg.run_failure_sensor(
    name="run_failure_notifier",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts failed runs to the webhook in ${WEBHOOK_URL_ENV} (Teams or Slack); logs them when unset.",
)
def run_failure_notifier(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    failures = context.get_step_failure_events()
    steps = [event.step_key for event in failures if event.step_key]
    errors = [_root_cause(event.step_failure_data.error) for event in failures if event.step_failure_data.error]
    error = "\n".join(errors) or (context.failure_event.message or "run failed")
    ui = (dg.EnvVar(UI_URL_ENV).get_value() or DEFAULT_UI_URL).rstrip("/")
    notice = FailureNotice(
        job=run.job_name, run_id=run.run_id, failed_steps=steps, error=error, run_url=f"{ui}/runs/{run.run_id}"
    )
    url = dg.EnvVar(WEBHOOK_URL_ENV).get_value()
    if not url:
        context.log.warning(
            f"run {run.run_id} of {run.job_name} failed at {', '.join(steps) or 'run level'}: {error[:500]} "
            f"(set {WEBHOOK_URL_ENV} to send this to Teams or Slack)"
        )
        return
    try:
        status = post_json(url, notice.payload())
    except NotificationFailed as exc:
        context.log.error(f"failure notification for run {run.run_id} not delivered: {exc}")
        return
    context.log.info(f"failure notification for run {run.run_id} delivered (HTTP {status})")
