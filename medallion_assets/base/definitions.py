"""Base layer definitions, built by looping over the validated base metadata.

Invalid metadata raises here, i.e. when the code location loads. Each table's checks are part of
its asset (evaluated in the step that loads it). Resources are bound by the root definitions
(``lakehouse``).
"""

from __future__ import annotations

import dagster as dg

from medallion_assets.base.assets import build_base_assets
from medallion_assets.engine.base.model import BaseTable, load_base_tables


def build_base_definitions(tables: tuple[BaseTable, ...] | None = None) -> dg.Definitions:
    tables = tables if tables is not None else load_base_tables()
    return dg.Definitions(assets=build_base_assets(tables))
