"""The curated engine (no Dagster): dimensions, facts, bridges and the calendar from SQL files."""

from medallion_assets.engine.curated.calendar import build_calendar, load_calendar
from medallion_assets.engine.curated.dimensions import load_dimension, merge_scd1, merge_scd2, unknown_member
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.facts import load_fact, map_keys
from medallion_assets.engine.curated.keys import resolve_key_columns
from medallion_assets.engine.curated.model import (
    CalendarMeta,
    CuratedModel,
    DimensionMeta,
    FactMeta,
    load_curated_model,
)
from medallion_assets.engine.curated.run import load_model
from medallion_assets.engine.curated.sql import TableRef, parse_select, run_select
from medallion_assets.engine.outcome import LoadOutcome

__all__ = [
    "CalendarMeta",
    "CuratedError",
    "CuratedModel",
    "DimensionMeta",
    "FactMeta",
    "LoadOutcome",
    "TableRef",
    "build_calendar",
    "load_calendar",
    "load_curated_model",
    "load_dimension",
    "load_fact",
    "load_model",
    "map_keys",
    "merge_scd1",
    "merge_scd2",
    "parse_select",
    "resolve_key_columns",
    "run_select",
    "unknown_member",
]
