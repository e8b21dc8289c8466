"""Asset factories for the curated layer: one asset per dimension, fact and bridge.

Thin wrappers: the engine (``medallion_assets.engine.curated``) does the work; these add the
asset key, dependencies inferred from the tables each SQL reads, partitions, retries, the
serving-view refresh, the materialization metadata and the table's checks, evaluated in the step
that loads the table.
"""


from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from medallion_assets.common.observability import TableChecks, column_lineage, load_metadata
from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.policies import guarded_step, retry_policy
from medallion_assets.common.pools import table_pool
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.curated.checks import build_dimension_checks, build_fact_checks
from medallion_assets.engine.curated import load_dimension, load_fact
from medallion_assets.engine.curated.calendar import load_calendar
from medallion_assets.engine.curated.model import CalendarMeta, DimensionMeta, FactMeta
from medallion_assets.engine.curated.sql import TableRef
from medallion_assets.engine.lineage import curated_lineage, declared_lineage
from medallion_assets.engine.outcome import LoadOutcome
from medallion_assets.engine.serving import refresh_serving_views

GROUP = "curated"
KINDS = {"deltalake", "duckdb"}
# "dimension", "fact" or "bridge": the jobs select on it.
ENTITY_TAG = "medallion/entity"


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["curated", table])


def deps_for(reads: Iterable[TableRef], extra_tables: Iterable[str] = ()) -> list[dg.AssetKey]:
    """Asset keys of the tables a SQL reads (``base.x`` -> ``["base", "x"]``), plus extra curated tables."""
    keys = {dg.AssetKey([ref.schema, ref.table]) for ref in reads}
    keys |= {asset_key(t) for t in extra_tables}
    return sorted(keys, key=lambda k: k.to_user_string())


def _curated_asset(
    *,
    table: str,
    entity: str,
    spec,
    description: str,
    metadata: dict[str, Any],
    load: Callable[[Path, date | None], LoadOutcome],
    checks: TableChecks | None = None,
    deps: list[dg.AssetKey] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    meta: DimensionMeta | FactMeta | None = None,
) -> dg.AssetsDefinition:
    """The one shape every curated asset has; ``load(root, partition_date)`` does the work and
    the table's checks are evaluated in the same step."""
    checks = checks or TableChecks()
    declared = declared_lineage(meta) if meta is not None else None
    if declared is not None:  # shown before any run; each materialization carries the stored one
        metadata = {**metadata, "dagster/column_lineage": column_lineage(declared)}

    @dg.asset(
        key=asset_key(table),
        group_name=GROUP,
        kinds=KINDS,
        deps=deps or [],
        partitions_def=partitions_def,
        description=description,
        retry_policy=retry_policy(spec.retry),
        metadata=metadata,
        tags={"layer": GROUP, ENTITY_TAG: entity},
        check_specs=checks.specs,
        pool=table_pool(asset_key(table)),
    )
    def _entity(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        root = lakehouse.root
        partition = date.fromisoformat(context.partition_key) if context.has_partition_key else None
        with guarded_step(context, spec.timeout_seconds):
            result = load(root, partition)
            for warning in result.warnings:
                context.log.warning(warning)
            refresh_serving_views(root, [f"curated.{t}" for t in result.written] or [f"curated.{result.table}"])
            check_results = checks.results(root)
        descriptions = getattr(spec, "column_descriptions", None)
        metadata = load_metadata(result, descriptions=descriptions)
        if meta is not None:
            try:
                metadata["dagster/column_lineage"] = column_lineage(curated_lineage(meta, root, [name for name, _ in result.columns]))
            except Exception as exc:  # noqa: BLE001 - lineage is shown, not needed: the committed load stands
                context.log.warning(f"{table}: no column lineage: {exc}")
        return dg.MaterializeResult(metadata=metadata, check_results=check_results)

    return _entity


def build_dimension_asset(*, meta: DimensionMeta) -> dg.AssetsDefinition:
    """``["curated", "dim_<name>"]``, unpartitioned, depending on the tables its SQL reads."""
    return _curated_asset(
        table=meta.table,
        entity="dimension",
        spec=meta.spec,
        description=meta.spec.description or f"Dimension {meta.table} ({meta.spec.write_pattern}) from {meta.sql_path.name}",
        metadata={"sql_file": dg.MetadataValue.path(str(meta.sql_path)), "write_pattern": meta.spec.write_pattern},
        deps=deps_for(meta.reads),
        load=lambda root, _: load_dimension(meta, root),
        meta=meta,
        checks=build_dimension_checks(meta=meta, asset_key=asset_key(meta.table)),
    )


def build_calendar_asset(*, meta: CalendarMeta) -> dg.AssetsDefinition:
    """``["curated", "dim_calendar"]``, generated from the configured date range."""
    return _curated_asset(
        table=meta.table,
        entity="dimension",
        spec=meta.spec,
        description=meta.spec.description,
        metadata={"start": str(meta.spec.start), "end": str(meta.spec.end)},
        load=lambda root, _: load_calendar(meta, root),
    )


def build_fact_asset(*, meta: FactMeta, dimension_tables: Iterable[str] = ()) -> dg.AssetsDefinition:
    """``["curated", "fact_<name>"]`` / ``["curated", "bridge_<name>"]``.

    With key mapping on, the asset also depends on ``dimension_tables`` (the model's dimensions):
    which key columns the SQL returns is only known when it runs, and facts run after dimensions.
    Incremental facts are daily partitioned.
    """
    extra = list(dimension_tables) if meta.spec.map_keys else []
    partitions_def = daily_partitions() if meta.is_partitioned else None
    return _curated_asset(
        table=meta.table,
        entity=meta.kind,
        spec=meta.spec,
        description=meta.spec.description or f"{meta.kind.title()} {meta.table} ({meta.spec.write_pattern})",
        metadata={"sql_file": dg.MetadataValue.path(str(meta.sql_path)), "write_pattern": meta.spec.write_pattern},
        deps=deps_for(meta.reads, extra),
        partitions_def=partitions_def,
        load=lambda root, partition: load_fact(meta, root, partition_date=partition),
        meta=meta,
        checks=build_fact_checks(meta=meta, asset_key=asset_key(meta.table), partitions_def=partitions_def),
    )
