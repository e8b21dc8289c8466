"""The Base asset factory: metadata in, one Dagster asset per destination table out."""


from datetime import date
from typing import Any

import dagster as dg

from medallion_assets.base.checks import build_base_checks
from medallion_assets.common.observability import column_lineage, load_metadata
from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.policies import guarded_step, retry_policy
from medallion_assets.common.pools import table_pool
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.base.load import load_partition
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.lineage import base_lineage
from medallion_assets.engine.serving import refresh_serving_views


def base_asset_key(table: BaseTable) -> dg.AssetKey:
    return dg.AssetKey(["base", table.name])


def _declared_lineage(table: BaseTable) -> dict[str, Any]:
    """Lineage on the definition when the metadata lists the table's ``columns`` (the stored
    columns are known only after a load otherwise; each materialization carries them)."""
    if not table.columns:
        return {}
    return {"dagster/column_lineage": column_lineage(base_lineage(table, table.columns))}


def build_base_asset(*, table: BaseTable) -> dg.AssetsDefinition:
    """One daily-partitioned asset loading ``table`` from its landing object(s)."""
    key = base_asset_key(table)
    landing = [dg.AssetKey(["landing", ref.asset_name]) for ref in table.landing]
    description = table.description or f"{table.write_behaviour} load of {', '.join(r.asset_name for r in table.landing)}."
    partitions_def = daily_partitions()
    checks = build_base_checks(table=table, asset_key=key, partitions_def=partitions_def)

    @dg.asset(
        key=key,
        group_name="base",
        partitions_def=partitions_def,
        deps=landing,
        kinds={"deltalake", "duckdb"},
        description=description,
        metadata={
            "write_behaviour": table.write_behaviour,
            "read_behaviour": table.read_behaviour,
            "business_keys": ", ".join(table.business_keys) or "-",
            "table_path": f"base/{table.name}",
            **_declared_lineage(table),
        },
        tags={"layer": "base", "source": table.source},
        retry_policy=retry_policy(table.retry),
        check_specs=checks.specs,
        pool=table_pool(key),
    )
    def _base(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        partition_date = date.fromisoformat(context.partition_key)
        with guarded_step(context, table.timeout_seconds):
            result = load_partition(table, lakehouse.root, partition_date)
            if result.delta_version is not None and result.status == "loaded":
                refresh_serving_views(lakehouse.root, [f"base.{table.name}"])
            check_results = checks.results(lakehouse.root)
        context.log.info(
            f"{key.to_user_string()} {context.partition_key}: {result.status}; read {result.rows_read:,}, "
            f"inserted {result.inserted:,}, updated {result.updated:,}, soft-deleted {result.soft_deleted:,}, "
            f"quarantined {result.quarantined:,}"
        )
        metadata = load_metadata(result, descriptions=table.column_descriptions)
        metadata["business_keys"] = dg.MetadataValue.text(", ".join(table.business_keys) or "-")  # what `medallion plan` compares
        if result.columns:
            metadata["dagster/column_lineage"] = column_lineage(base_lineage(table, [name for name, _ in result.columns]))
        return dg.MaterializeResult(metadata=metadata, check_results=check_results)

    return _base


def build_base_assets(tables: tuple[BaseTable, ...] | list[BaseTable]) -> list[dg.AssetsDefinition]:
    """Assets for every included table (``include: false`` leaves a table out)."""
    return [build_base_asset(table=table) for table in tables if table.include]
