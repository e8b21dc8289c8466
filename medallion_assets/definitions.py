"""The code location: every layer's definitions merged, with cross-cutting policy applied once."""

import warnings
from datetime import timedelta

import dagster as dg

from medallion_assets.base.definitions import build_base_definitions
from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.curated.definitions import build_curated_definitions
from medallion_assets.engine.catalog import ProjectMetadata, load_project_metadata
from medallion_assets.landing.definitions import build_landing_definitions
from medallion_assets.orchestration.jobs import (
    build_celery_jobs,
    build_project_executor,
    dimensions_job,
    facts_job,
    landing_to_base_job,
    medallion_daily_job,
)
from medallion_assets.orchestration.maintenance import build_maintenance_schedule, maintenance_job
from medallion_assets.orchestration.rollback import rollback_job
from medallion_assets.orchestration.schedules import build_daily_schedule
from medallion_assets.orchestration.sensors import build_landing_sensor, run_failure_notifier


def _landing_downstream(layers: dg.Definitions) -> dict[dg.AssetKey, list[dg.AssetKey]]:
    """For each landing asset, the base assets that read it (what a new landing file affects)."""
    downstream: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for assets_def in layers.assets or []:
        for spec in assets_def.specs:
            if spec.key.path[0] == "landing":
                downstream.setdefault(spec.key, set())
            for dep in spec.deps:
                if dep.asset_key.path[0] == "landing" and spec.key.path[0] == "base":
                    downstream.setdefault(dep.asset_key, set()).add(spec.key)
    return {key: sorted(children, key=str) for key, children in downstream.items()}


# Curated tables follow their upstream: once per change (since_last_handled), never while an
# upstream is still running (so a fact waits for the dimensions of the same change).
CURATED_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("upstream changed")


def _with_layer_policy(spec: dg.AssetSpec, *, hours: float) -> dg.AssetSpec:
    """Freshness on every table of the lakehouse; automation on the curated layer."""
    if spec.key.path[0] not in ("base", "curated"):
        return spec
    attributes = {"freshness_policy": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=hours))}
    if spec.group_name == "curated":
        attributes["automation_condition"] = CURATED_AUTOMATION
    return spec.replace_attributes(**attributes)


def build_definitions(metadata: ProjectMetadata | None = None) -> dg.Definitions:
    """The code location for the metadata folder in ``$MEDALLION_METADATA_DIR`` (default: the
    shipped sample) and the data root in ``$MEDALLION_DATA_DIR``, both read now, not at import."""
    metadata = metadata or load_project_metadata()
    layers = dg.Definitions.merge(
        build_landing_definitions(metadata.sources),
        build_base_definitions(metadata.base_tables),
        build_curated_definitions(metadata.curated),
    )
    with warnings.catch_warnings():
        # map_asset_specs is marked preview in dagster 1.13 (pinned <1.14 in pyproject.toml);
        # it is the way to apply one policy to every layer's specs without touching each factory.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        hours = metadata.settings.checks.freshness_hours
        layers = layers.map_asset_specs(func=lambda spec: _with_layer_policy(spec, hours=hours))
    automation_sensor = dg.AutomationConditionSensorDefinition(
        "curated_automation",
        target=dg.AssetSelection.groups("curated"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Updates curated tables when the base tables they read change.",
    )
    landing_sensor = build_landing_sensor(
        systems=metadata.sources, downstream=_landing_downstream(layers), partitions_def=daily_partitions()
    )
    return dg.Definitions.merge(
        layers,
        dg.Definitions(
            jobs=[
                medallion_daily_job,
                landing_to_base_job,
                dimensions_job,
                facts_job,
                maintenance_job,
                rollback_job,
                *build_celery_jobs(),
            ],
            schedules=[build_daily_schedule(medallion_daily_job), build_maintenance_schedule()],
            sensors=[landing_sensor, run_failure_notifier, automation_sensor],
            resources={"lakehouse": LakehouseResource()},
            executor=build_project_executor(),
        ),
    )


defs = build_definitions()
