"""The Base asset factory: metadata in, one Dagster asset per destination table out."""


from datetime import date
from typing import Any

import dagster as dg

from medallion_assets.engine.base.load import LoadResult, load_partition
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.base.schema import BaseLoadError
from medallion_assets.engine.serving import refresh_serving_views
from medallion_assets.observability import markdown_preview
from medallion_assets.partitions import daily_partitions
from medallion_assets.policies import retry_policy, step_timeout
from medallion_assets.pools import table_pool
from medallion_assets.resources import LakehouseResource

def base_asset_key(table: BaseTable) -> dg.AssetKey:
    return dg.AssetKey(["base", table.name])


def result_metadata(result: LoadResult) -> dict[str, Any]:
    """Materialization metadata: counts the UI plots, plus the version, schema and a preview."""
    metadata: dict[str, Any] = {
        "status": dg.MetadataValue.text(result.status),
        "rows_read": dg.MetadataValue.int(result.rows_read),
        "inserted": dg.MetadataValue.int(result.inserted),
        "updated": dg.MetadataValue.int(result.updated),
        "soft_deleted": dg.MetadataValue.int(result.soft_deleted),
        "unchanged": dg.MetadataValue.int(result.unchanged),
        "quarantined": dg.MetadataValue.int(result.quarantined),
        "replaced": dg.MetadataValue.int(result.removed),
        "write_behaviour": dg.MetadataValue.text(result.write_behaviour),
        "landing_files": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in result.files) or "no files"),
    }
    if result.delta_version is not None:
        metadata["delta_version"] = dg.MetadataValue.int(result.delta_version)
    if result.schema:
        metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(name=name, type=type_name) for name, type_name in result.schema])
        )
    if result.preview is not None:
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(result.preview))
    if result.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(result.notes))
    return metadata


def build_base_asset(*, table: BaseTable) -> dg.AssetsDefinition:
    """One daily-partitioned asset loading ``table`` from its landing object(s)."""
    key = base_asset_key(table)
    landing = [dg.AssetKey(["landing", ref.asset_name]) for ref in table.landing]
    description = table.description or f"{table.write_behaviour} load of {', '.join(r.asset_name for r in table.landing)}."

    @dg.asset(
        key=key,
        group_name="base",
        partitions_def=daily_partitions,
        deps=landing,
        kinds={"deltalake", "duckdb"},
        description=description,
        metadata={
            "write_behaviour": table.write_behaviour,
            "read_behaviour": table.read_behaviour,
            "business_keys": ", ".join(table.business_keys) or "-",
            "table_path": f"base/{table.name}",
        },
        tags={"layer": "base", "source": table.source},
        retry_policy=retry_policy(table.retry),
        pool=table_pool(key),
    )
    def _base(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        partition_date = date.fromisoformat(context.partition_key)
        with step_timeout(context, table.timeout_seconds):
            try:
                result = load_partition(table, lakehouse.root, partition_date)
            except BaseLoadError as exc:
                # Bad input fails the same way every time: report it, do not retry it.
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
        if result.delta_version is not None and result.status == "loaded":
            refresh_serving_views(lakehouse.root, [f"base.{table.name}"])
        context.log.info(
            f"{key.to_user_string()} {context.partition_key}: {result.status}; read {result.rows_read:,}, "
            f"inserted {result.inserted:,}, updated {result.updated:,}, soft-deleted {result.soft_deleted:,}, "
            f"quarantined {result.quarantined:,}"
        )
        return dg.MaterializeResult(metadata=result_metadata(result))

    return _base


def build_base_assets(tables: tuple[BaseTable, ...] | list[BaseTable]) -> list[dg.AssetsDefinition]:
    """Assets for every included table (``include: false`` leaves a table out)."""
    return [build_base_asset(table=table) for table in tables if table.include]
