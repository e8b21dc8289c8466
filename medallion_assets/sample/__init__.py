"""The sample source system: an ERP database that changes day by day and a finance drop folder.

The ERP lives in a DuckDB file under the data root, or, when ``ERP_DATABASE_URL`` is set, in the
PostgreSQL database it names (see ``publish.py``): the same data for the same seed either way.

``generate_sample`` plays the history: it creates the database as of the first day and, for
every day, runs the same extract code the landing assets run, then moves the source forward. So
the landing files are exactly what a daily extract would have produced. Everything is built in a
staging folder inside the data root and moved into place at the end; the database appears last,
and its presence means the sample is complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from medallion_assets.engine.landing.extract import extract_object
from medallion_assets.engine.landing.sources import DropFolderConnection, DuckDBConnection, SourceSystem, load_sources
from medallion_assets.engine.metadata import shipped_metadata_root
from medallion_assets.engine.project import load_project_settings
from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_remote, local_dir, upload_tree
from medallion_assets.engine.storage.paths import inside

# The sample is described by the metadata shipped with the package, whatever MEDALLION_METADATA_DIR says.
SAMPLE_METADATA = shipped_metadata_root()
ERP_SOURCE = "erp"
FINANCE_SOURCE = "finance"


class SampleError(RuntimeError):
    """The sample cannot be generated or advanced as asked."""


@dataclass(frozen=True)
class SamplePaths:
    database: Path
    drop_folder: Path


def sample_paths(data_dir: LakeRoot, systems: dict[str, SourceSystem] | None = None) -> SamplePaths:
    systems = systems or load_sources(SAMPLE_METADATA / "sources")
    erp, finance = systems[ERP_SOURCE].connection, systems[FINANCE_SOURCE].connection
    assert isinstance(erp, DuckDBConnection) and isinstance(finance, DropFolderConnection)
    local = local_dir(as_path(data_dir))  # the data root itself, unless the lake is remote
    return SamplePaths(database=inside(local, erp.database), drop_folder=inside(local, finance.folder))


def erp_database_url(systems: dict[str, SourceSystem] | None = None) -> str | None:
    """The SQL database the sample ERP lives in (``connection.url_env``), or ``None`` for the file."""
    from medallion_assets.engine.landing.extract import database_url_for

    systems = systems or load_sources(SAMPLE_METADATA / "sources")
    return database_url_for(systems[ERP_SOURCE], os.environ.get)


def sample_exists(data_dir: LakeRoot) -> bool:
    return sample_paths(as_path(data_dir)).database.is_file()


def default_sample_start(days: int, *, today: date | None = None) -> date:
    """The first day of a sample of ``days`` days whose last day is yesterday (the CLI's default)."""
    return (today or date.today()) - timedelta(days=days)


def generate_sample(
    data_dir: LakeRoot,
    *,
    seed: int = 42,
    days: int = 14,
    customers: int = 2_000,
    order_lines: int = 20_000,
    start_date: date | None = None,
    log: Callable[[str], None] = print,
) -> list[date]:
    """Write the sample database at its final state and the landing files of ``days`` daily extracts."""
    from medallion_assets.sample.erp import advance_erp_database, create_erp_database
    from medallion_assets.sample.finance import write_budget_drops
    from medallion_assets.sample.publish import erp_target

    data_dir = as_path(data_dir)
    systems = load_sources(SAMPLE_METADATA / "sources")
    target = erp_target(erp_database_url(systems))
    partitions = load_project_settings(SAMPLE_METADATA / "project.yaml").partitions
    if isinstance(partitions.start_date, date):  # fixed partitions: the sample may not start before them
        partition_start = partitions.start_date
        start_date = start_date or partition_start
        if start_date < partition_start:
            raise SampleError(f"--start-date {start_date} is before the first partition {partition_start} (metadata/project.yaml)")
    else:  # partitions start on the first landed day, i.e. on the sample's first day
        start_date = start_date or partitions.start_without_data
        partition_start = start_date
    if days < 1:
        raise SampleError("--days must be at least 1")
    final = sample_paths(data_dir, systems)
    if final.database.exists():
        raise SampleError(f"a sample already exists at {final.database}; use `medallion sample advance` or remove it")
    landed = [data_dir / "landing" / name for name in (ERP_SOURCE, FINANCE_SOURCE)]
    for folder in landed:
        if folder.exists() and any(folder.iterdir()):
            raise SampleError(f"{folder} already holds landing files; remove it before generating a new sample")

    staging = local_dir(data_dir) / f".sample-staging-{uuid.uuid4().hex[:8]}"
    staged = sample_paths(staging, systems)
    staged.database.parent.mkdir(parents=True, exist_ok=True)
    staged.drop_folder.mkdir(parents=True, exist_ok=True)
    try:
        create_erp_database(
            staged.database, seed=seed, start_date=start_date, days=days, customers=customers, order_lines=order_lines
        )
        watermarks: dict[tuple[str, str], datetime | None] = {}
        simulated: list[date] = []
        for index in range(days):
            day = start_date if index == 0 else advance_erp_database(staged.database, days=1)[-1]
            _publish(target, staged.database)
            write_budget_drops(staged.drop_folder, staged.database, days=[day])
            for system in systems.values():
                for obj in system.included_objects():
                    result = extract_object(
                        staging,
                        system,
                        obj,
                        day,
                        partition_start=partition_start,
                        previous_watermark=watermarks.get((system.source, obj.name)),
                        database_url=target.database_url if system.source == ERP_SOURCE else None,
                    )
                    watermarks[(system.source, obj.name)] = result.watermark
            simulated.append(day)
            log(f"sample day {day}: extracted")
        _move_into_place(staging, data_dir, staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return simulated


def _publish(target, working: Path) -> None:
    try:
        target.publish(working)
    except (RuntimeError, ValueError) as exc:
        raise SampleError(str(exc)) from None


def _move_into_place(staging: Path, data_dir: LakeRoot, staged: SamplePaths, final: SamplePaths) -> None:
    for name in (ERP_SOURCE, FINANCE_SOURCE):
        source = staging / "landing" / name
        if source.exists():
            target = data_dir / "landing" / name
            if is_remote(target):
                upload_tree(source, target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.rmdir()  # empty, checked before generating
            source.rename(target)
    final.drop_folder.parent.mkdir(parents=True, exist_ok=True)
    if final.drop_folder.exists():
        for item in staged.drop_folder.iterdir():
            if not (final.drop_folder / item.name).exists():
                item.rename(final.drop_folder / item.name)
    else:
        staged.drop_folder.rename(final.drop_folder)
    final.database.parent.mkdir(parents=True, exist_ok=True)
    staged.database.rename(final.database)  # last: its presence marks a complete sample


def advance_sample(data_dir: LakeRoot, *, days: int = 1, log: Callable[[str], None] = print) -> list[date]:
    """Move the source systems forward; the landing assets then extract the new days."""
    from medallion_assets.sample.erp import advance_erp_database
    from medallion_assets.sample.finance import write_budget_drops
    from medallion_assets.sample.publish import erp_target

    target = erp_target(erp_database_url())
    paths = sample_paths(as_path(data_dir))
    if not paths.database.is_file():
        raise SampleError(f"no sample at {paths.database}; run `medallion sample generate` first")
    paths.drop_folder.mkdir(parents=True, exist_ok=True)
    try:
        simulated = advance_erp_database(paths.database, days=days)
    except duckdb.Error as exc:
        raise SampleError(f"cannot move the sample source at {paths.database} forward: {exc}") from exc
    _publish(target, paths.database)
    write_budget_drops(paths.drop_folder, paths.database, days=simulated)
    for day in simulated:
        log(f"sample day {day}: source moved forward")
    return simulated
