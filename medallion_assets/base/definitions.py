"""Base layer definitions, built by looping over the validated base metadata.

Invalid metadata raises here, i.e. when the code location loads. Resources are bound by the root
definitions (``lakehouse``).
"""

import dagster as dg

from medallion_assets.base.assets import build_base_assets
from medallion_assets.base.checks import build_base_checks
from medallion_assets.engine.base.model import load_base_tables


def build_base_definitions() -> dg.Definitions:
    tables = load_base_tables()
    return dg.Definitions(assets=build_base_assets(tables), asset_checks=build_base_checks(tables))



