"""Definitions of the curated layer, built by looping the factories over the curated model.

Loading the model validates YAML and SQL, so a broken model fails the code location with an
error naming the file. Each table's checks are part of its asset. Resources are bound by the
project's root definitions.
"""

from __future__ import annotations

import dagster as dg

from medallion_assets.curated.assets import build_calendar_asset, build_dimension_asset, build_fact_asset
from medallion_assets.engine.curated.model import CuratedModel, load_curated_model


def build_curated_definitions(model: CuratedModel | None = None) -> dg.Definitions:
    model = model or load_curated_model()
    assets: list[dg.AssetsDefinition] = []
    if model.calendar is not None:
        assets.append(build_calendar_asset(meta=model.calendar))
    for dimension in model.dimensions.values():
        assets.append(build_dimension_asset(meta=dimension))
    dimension_tables = [d.table for d in model.dimension_tables().values()]
    for fact in model.facts.values():
        assets.append(build_fact_asset(meta=fact, dimension_tables=dimension_tables))
    return dg.Definitions(assets=assets)
