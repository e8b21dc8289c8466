"""Landing layer definitions: one asset per included source object."""

import dagster as dg

from medallion_assets.engine.sources import load_sources
from medallion_assets.landing.assets import build_landing_assets


def build_landing_definitions() -> dg.Definitions:
    return dg.Definitions(assets=build_landing_assets(load_sources()))
