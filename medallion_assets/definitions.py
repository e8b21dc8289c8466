"""The code location: every layer's definitions merged, with cross-cutting policy applied once."""

import dagster as dg

from medallion_assets.jobs import landing_to_base_job, medallion_daily_job
from medallion_assets.landing.definitions import build_landing_definitions
from medallion_assets.resources import LakehouseResource


def build_definitions() -> dg.Definitions:
    layers = dg.Definitions.merge(
        build_landing_definitions(),
    )
    return dg.Definitions.merge(
        layers,
        dg.Definitions(
            jobs=[medallion_daily_job, landing_to_base_job],
            resources={"lakehouse": LakehouseResource()},
        ),
    )


defs = build_definitions()
