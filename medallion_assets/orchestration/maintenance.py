"""The maintenance job: compaction and vacuum of every Delta table, weekly by schedule."""


import dagster as dg

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.project import load_project_settings
from medallion_assets.engine.storage.maintenance import delta_tables, maintain_table


class MaintenanceConfig(dg.Config):
    retention_days: float = 7.0
    """Files unreferenced for longer than this are deleted; time travel reaches this far back."""


@dg.op(description="Compact and vacuum every Delta table under base/ and curated/.")
def compact_and_vacuum(context: dg.OpExecutionContext, config: MaintenanceConfig, lakehouse: LakehouseResource):
    for path in delta_tables(lakehouse.root):
        result = maintain_table(path, retention_days=config.retention_days)
        layer, name = path.parent.name, path.name
        context.log.info(
            f"{result.table}: {result.before.disk_files} -> {result.after.disk_files} files on disk, "
            f"{result.before.active_files} -> {result.after.active_files} active"
        )
        yield dg.AssetObservation(
            asset_key=dg.AssetKey([layer, name]),
            metadata={
                "files_before": result.before.disk_files,
                "files_after": result.after.disk_files,
                "bytes_before": result.before.disk_bytes,
                "bytes_after": result.after.disk_bytes,
                "active_files_before": result.before.active_files,
                "active_files_after": result.after.active_files,
                "files_compacted": result.files_compacted,
                "files_vacuumed": result.files_vacuumed,
                "delta_version": result.version,
                "retention_days": config.retention_days,
            },
        )
    yield dg.Output(None)


@dg.job(name="maintenance", description="Weekly Delta maintenance: optimize (compact) and vacuum.")
def maintenance_job():
    compact_and_vacuum()


def build_maintenance_schedule() -> dg.ScheduleDefinition:
    settings = load_project_settings().schedules.maintenance
    return dg.ScheduleDefinition(
        name="maintenance_schedule",
        job=maintenance_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
    )
