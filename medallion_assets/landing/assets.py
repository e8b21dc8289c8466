"""Landing assets: one per source object, daily partitioned, built from source metadata."""


from datetime import date, datetime

import dagster as dg

from medallion_assets.common.observability import WATERMARK_KEY, load_metadata
from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.policies import guarded_step, retry_policy
from medallion_assets.common.pools import table_pool
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.extract import extract_object
from medallion_assets.engine.landing.sources import (
    DropFolderConnection,
    SourceObject,
    SourceSystem,
    SqlDatabaseConnection,
)

# How far back to look for the previous partition's watermark; more than a year of daily runs.
_WATERMARK_SEARCH_LIMIT = 500


class LandingConfig(dg.Config):
    force_reextract: bool = False
    """Replace an extract that already landed for this partition with a fresh read of the source."""


def landing_asset_key(source: str, object_name: str) -> dg.AssetKey:
    return dg.AssetKey(["landing", f"{source}_{object_name}"])


def previous_watermark(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str) -> datetime | None:
    """The highest watermark recorded by a materialization of an earlier partition.

    The watermark lives in Dagster's own event log (materialization metadata), so it cannot
    drift from what actually landed.
    """
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key), limit=_WATERMARK_SEARCH_LIMIT, ascending=False
    )
    best: datetime | None = None
    for record in result.records:
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None or materialization.partition >= partition_key:
            continue
        entry = materialization.metadata.get(WATERMARK_KEY)
        if entry is None or not entry.value:
            continue
        watermark = datetime.fromisoformat(str(entry.value))
        best = watermark if best is None or watermark > best else best
    return best


def build_landing_asset(*, system: SourceSystem, obj: SourceObject) -> dg.AssetsDefinition:
    key = landing_asset_key(system.source, obj.name)
    pushed = isinstance(system.connection, DropFolderConnection)
    description = (
        f"Files that {system.source} drops into its folder matching `{obj.file_pattern}`, landed unmodified."
        if pushed
        else f"`{obj.source_table}` from {system.source}, extracted {obj.extract_mode} as {obj.format}."
    )

    partitions_def = daily_partitions()
    partition_start = partitions_def.start.date()

    @dg.asset(
        key=key,
        group_name="landing",
        partitions_def=partitions_def,
        kinds=_kinds(system, obj),
        description=description,
        metadata={"source": system.source, "object": obj.name, "extract_mode": obj.extract_mode, "format": obj.format},
        tags={"layer": "landing", "source": system.source},
        retry_policy=retry_policy(obj.retry),
        pool=table_pool(key),
    )
    def _landing(context: dg.AssetExecutionContext, config: LandingConfig, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        partition_date = date.fromisoformat(context.partition_key)
        watermark = None
        if obj.extract_mode == "incremental":
            watermark = previous_watermark(context.instance, key, context.partition_key)
        with guarded_step(context, obj.timeout_seconds):
            result = extract_object(
                lakehouse.root,
                system,
                obj,
                partition_date,
                partition_start=partition_start,
                previous_watermark=watermark,
                force=config.force_reextract,
                log=context.log.info,
                database_url=lakehouse.database_url(system),
            )
        context.log.info(
            f"{key.to_user_string()} {context.partition_key}: {result.status}, "
            f"{len(result.files)} file(s), {result.rows_read:,} rows, {result.bytes_written:,} bytes"
        )
        return dg.MaterializeResult(metadata=load_metadata(result))

    return _landing


def _kinds(system: SourceSystem, obj: SourceObject) -> set[str]:
    if isinstance(system.connection, DropFolderConnection):
        return {"csv", "file"}
    reader = "sql" if isinstance(system.connection, SqlDatabaseConnection) else "duckdb"
    return {"pandas" if obj.format == "csv" else obj.format, reader}


def build_landing_assets(systems: dict[str, SourceSystem]) -> list[dg.AssetsDefinition]:
    return [
        build_landing_asset(system=system, obj=obj)
        for system in systems.values()
        for obj in system.included_objects()
    ]
