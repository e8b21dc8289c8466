"""The whole curated model in one call, in the order the jobs run it: calendar and dimensions,
then facts and bridges. For notebooks, benchmarks and tests that run the engine without Dagster."""

from __future__ import annotations

from medallion_assets.engine.curated.calendar import load_calendar
from medallion_assets.engine.curated.dimensions import load_dimension
from medallion_assets.engine.curated.facts import load_fact
from medallion_assets.engine.curated.model import CuratedModel, load_curated_model
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.storage.lake import LakeRoot


def load_model(data_dir: LakeRoot, model: CuratedModel | None = None) -> dict[str, LoadOutcome]:
    model = model or load_curated_model()
    results: dict[str, LoadOutcome] = {}
    if model.calendar is not None:
        results[model.calendar.table] = load_calendar(model.calendar, data_dir)
    for dimension in model.dimensions.values():
        results[dimension.table] = load_dimension(dimension, data_dir)
    for fact in model.facts.values():
        results[fact.table] = load_fact(fact, data_dir)
    return results
