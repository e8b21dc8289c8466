"""Landing layer definitions: one asset per included source object."""

from __future__ import annotations

import dagster as dg

from medallion_assets.engine.landing.sources import SourceSystem, load_sources
from medallion_assets.landing.assets import build_landing_assets


def build_landing_definitions(systems: dict[str, SourceSystem] | None = None) -> dg.Definitions:
    return dg.Definitions(assets=build_landing_assets(systems if systems is not None else load_sources()))
