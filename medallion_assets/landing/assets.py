"""Landing assets: one per source object, daily partitioned, built from source metadata."""


from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.policies import guarded_step, retry_policy
from medallion_assets.common.pools import table_pool
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.extract import ExtractResult, extract_object
from medallion_assets.engine.landing.sources import (
    DropFolderConnection,
    SourceObject,
    SourceSystem,
    SqlDatabaseConnection,
)
from medallion_assets.engine.storage.paths import parse_landing_file

WATERMARK_KEY = "watermark"
LANDING_PATHS_KEY = "landing_paths"
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


def extract_day_mismatch(result: ExtractResult) -> str:
    """Landing files of this partition stamped before its day or more than a day after it (an extract
    of the nightly run, stamped the morning after, is expected)."""
    day = result.partition_date
    other = sorted(
        f.path.name
        for f in result.files
        if (stamp := _stamp_day(f.path)) is not None and not 0 <= (stamp - day).days <= 1
    )
    if not other:
        return ""
    return f"partition {day}: {len(other)} file(s) stamped on another day: {', '.join(other[:5])}"


def _stamp_day(path: Path) -> date | None:
    parsed = parse_landing_file(path)
    return parsed.extracted_at.date() if parsed is not None else None


def landing_metadata(result: ExtractResult, data_root: Path) -> dict[str, Any]:
    files_table = "\n".join(
        f"| `{f.path.relative_to(data_root)}` | {f.load_type} | {f.rows:,} | {f.bytes:,} |" for f in result.files
    )
    metadata: dict[str, Any] = {
        "status": result.status,
        "files": dg.MetadataValue.int(len(result.files)),
        "rows": dg.MetadataValue.int(result.rows),
        "bytes": dg.MetadataValue.int(result.bytes),
        "landing_files": dg.MetadataValue.md(
            "| file | load type | rows | bytes |\n|---|---|---|---|\n" + files_table if files_table else "no files"
        ),
        LANDING_PATHS_KEY: dg.MetadataValue.json([str(f.path.relative_to(data_root)) for f in result.files]),
        WATERMARK_KEY: dg.MetadataValue.text(result.watermark.isoformat() if result.watermark else ""),
    }
    if result.extracted_at:
        metadata["extracted_at"] = dg.MetadataValue.text(result.extracted_at.isoformat())
    if mismatch := extract_day_mismatch(result):
        metadata["extract_day_mismatch"] = dg.MetadataValue.text(mismatch)
    if result.removed:
        metadata["replaced_files"] = dg.MetadataValue.int(len(result.removed))
    if result.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(result.notes))
    return metadata


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
            f"{len(result.files)} file(s), {result.rows:,} rows, {result.bytes:,} bytes"
        )
        return dg.MaterializeResult(metadata=landing_metadata(result, lakehouse.root))

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
