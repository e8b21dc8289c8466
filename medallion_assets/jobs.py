"""Jobs over the asset graph."""

import dagster as dg


medallion_daily_job = dg.define_asset_job(
    name="medallion_daily",
    selection=dg.AssetSelection.all(),
    description="Everything for one day: landing, base, then curated.",
)

landing_to_base_job = dg.define_asset_job(
    name="landing_to_base",
    selection=dg.AssetSelection.groups("landing", "base"),
    description="All landing and base assets for one partition.",
)
