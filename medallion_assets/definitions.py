"""The code location: every layer's definitions merged, with cross-cutting policy applied once."""

import dagster as dg

from medallion_assets.engine.sources import load_sources
from medallion_assets.base.definitions import build_base_definitions
from medallion_assets.curated.definitions import build_curated_definitions
from medallion_assets.jobs import dimensions_job, facts_job, landing_to_base_job, medallion_daily_job
from medallion_assets.landing.definitions import build_landing_definitions
from medallion_assets.maintenance import build_maintenance_schedule, maintenance_job
from medallion_assets.partitions import daily_partitions
from medallion_assets.resources import LakehouseResource
from medallion_assets.schedules import build_daily_schedule
from medallion_assets.sensors import build_landing_sensor, run_failure_notifier


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


def build_definitions() -> dg.Definitions:
    layers = dg.Definitions.merge(
        build_landing_definitions(),
        build_base_definitions(),
        build_curated_definitions(),
    )
    landing_sensor = build_landing_sensor(
        systems=load_sources(), downstream=_landing_downstream(layers), partitions_def=daily_partitions
    )
    return dg.Definitions.merge(
        layers,
        dg.Definitions(
            jobs=[medallion_daily_job, landing_to_base_job, dimensions_job, facts_job, maintenance_job],
            schedules=[build_daily_schedule(medallion_daily_job), build_maintenance_schedule()],
            sensors=[landing_sensor, run_failure_notifier],
            resources={"lakehouse": LakehouseResource()},
        ),
    )


defs = build_definitions()
