"""`medallion plan`: the engine's plan (``engine/plan.py``) with what only the Dagster instance
knows, the write behaviour and business keys each base table was last loaded with, and its
rendering as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.catalog import load_project_metadata
from medallion_assets.engine.plan import MetadataPlan, make_plan, rebuild_command
from medallion_assets.engine.project import load_project_settings

LAST_LOAD_KEYS = ("write_behaviour", "business_keys")


def last_loads(instance: dg.DagsterInstance, tables: list[BaseTable]) -> dict[str, dict[str, str]]:
    """Per base table, the write behaviour and business keys of its latest materialization."""
    out: dict[str, dict[str, str]] = {}
    for table in tables:
        event = instance.get_latest_materialization_event(dg.AssetKey(["base", table.name]))
        if event is not None and event.asset_materialization is not None:
            metadata = event.asset_materialization.metadata
            out[table.name] = {k: str(metadata[k].value) for k in LAST_LOAD_KEYS if k in metadata}
    return out


def plan_project(root: Path) -> MetadataPlan:
    """The plan of the metadata folder against the lake at ``root`` and the instance at ``$DAGSTER_HOME``."""
    project = load_project_metadata()
    curated = [*project.curated.dimensions.values(), *project.curated.facts.values()]
    with dg.DagsterInstance.get() as instance:
        loads = last_loads(instance, list(project.base_tables))
    return make_plan(base_tables=project.base_tables, curated=curated, root=root, last_loads=loads)


def render(plan: MetadataPlan, *, as_json: bool, log: Callable[[str], None] = print) -> None:
    first = load_project_settings().partitions.start_without_data.isoformat()
    last = (date.today() - timedelta(days=1)).isoformat()
    if as_json:
        tables = [
            {**asdict(t), "breaking": t.breaking, "rebuild": rebuild_command(t, first_day=first, last_day=last) if t.changes else None}
            for t in plan.tables
        ]
        log(json.dumps({"changed": len(plan.changed), "tables": tables}, indent=2))
        return
    for table in plan.tables:
        for note in table.notes:
            log(f"{table.table}: {note}")
        if not table.changes:
            continue
        log(f"{table.table} ({table.file}){': BREAKING' if table.breaking else ''}")
        for change in table.changes:
            log(f"  {change.what}: {change.detail}{' (breaking)' if change.breaking else ''}")
        log(f"  rebuild: {rebuild_command(table, first_day=first, last_day=last)}")
    breaking = sum(1 for t in plan.changed if t.breaking)
    log(f"plan: {len(plan.changed)} table(s) change, {breaking} breaking" if plan.changed else "plan: no changes")
