"""Extract source objects into the landing layer.

A landing partition holds what the source looked like when that day's extract ran. Extracts are
written through a temporary dot-file and renamed, so a crash leaves no file a reader would pick
up. A source cannot be re-read as of a past day, so an existing extract is kept unless a forced
re-extract is asked for; a forced re-extract puts the new files in place first and only then
removes the old ones.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.landing.database import SourceQuery, SourceReadError, SqlSource
from medallion_assets.engine.landing.sources import (
    DropFolderConnection,
    DuckDBConnection,
    SourceObject,
    SourceSystem,
    SqlDatabaseConnection,
)
from medallion_assets.engine.memory import budgeted, configure, new_database
from medallion_assets.engine.outcome import LoadOutcome, Status, WrittenFile
from medallion_assets.engine.progress import Progress
from medallion_assets.engine.sqltext import path_literal, quote_identifier
from medallion_assets.engine.storage.files import atomic_path, copy_file_atomic
from medallion_assets.engine.storage.lake import LakeRoot, as_path, local_copy, local_dir, relative_name
from medallion_assets.engine.storage.paths import (
    LandingFile,
    inside,
    landing_file_path,
    list_landing_files,
    parse_landing_file,
)


class SourceUnavailable(SourceReadError):
    """The source system cannot be read (missing or locked database, missing drop folder)."""


def check_named_columns(system: SourceSystem, obj: SourceObject, columns: list[str], *, what: str) -> None:
    """Every column the object's metadata names (``primary_key``, ``watermark_column``,
    ``columns``) is among ``columns``, what the source gives; else an error naming the metadata
    file, the object, the field and the column (not retried: the metadata must change)."""
    have = {c.lower() for c in columns}
    named = [("primary_key", c) for c in obj.primary_key] + [("columns", c) for c in obj.columns or []]
    if obj.watermark_column:
        named.append(("watermark_column", obj.watermark_column))
    for field_name, column in named:
        if column.lower() not in have:
            raise SourceReadError(
                f"{system.file}: object {obj.name!r}, field {field_name!r}: column {column!r} is not in {what} "
                f"(its columns: {', '.join(columns)})",
                transient=False,
            )


def database_url_for(system: SourceSystem, lookup: Callable[[str], str | None]) -> str | None:
    """The SQL database URL of ``system``, looked up by the environment variable its metadata
    names (``lookup`` is the caller's: Dagster's ``EnvVar`` in assets, the environment in the CLI).
    ``None`` for a DuckDB source whose variable is unset (its file is read) and for drop folders."""
    connection = system.connection
    if isinstance(connection, DropFolderConnection) or not connection.url_env:
        return None
    url = lookup(connection.url_env) or None
    if url is None and isinstance(connection, SqlDatabaseConnection):
        raise SourceUnavailable(
            f"source {system.source!r}: environment variable {connection.url_env} (connection.url_env) is not set; "
            f"it must hold the database URL",
            transient=False,
        )
    return url


@dataclass
class _Extraction:
    """What an extract has landed so far; :meth:`outcome` makes it the immutable ``LoadOutcome``."""

    source: str
    object: str
    partition_date: date
    status: Status
    files: list[WrittenFile] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    watermark: datetime | None = None
    extracted_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    def outcome(self, data_dir: LakeRoot) -> LoadOutcome:
        mismatch = extract_day_mismatch(self.partition_date, self.files)
        return LoadOutcome(
            layer="landing",
            table=f"{self.source}_{self.object}",
            partition_date=self.partition_date,
            status=self.status,
            rows_read=sum(f.rows for f in self.files if f.load_type != "keys"),
            bytes_written=sum(f.bytes for f in self.files),
            files=tuple(relative_name(f.path, data_dir) for f in self.files),
            landed=tuple(self.files),
            replaced_files=tuple(self.removed),
            watermark=self.watermark,
            extracted_at=self.extracted_at,
            notes=tuple(self.notes),
            warnings=(mismatch,) if mismatch else (),
        )


def extract_day_mismatch(partition_date: date, files: Sequence[WrittenFile]) -> str:
    """Landing files of this partition stamped before its day or more than a day after it (an extract
    of the nightly run, stamped the morning after, is expected)."""
    other = sorted(
        f.path.name
        for f in files
        if (parsed := parse_landing_file(f.path)) is not None and not 0 <= (parsed.extracted_at.date() - partition_date).days <= 1
    )
    if not other:
        return ""
    return f"partition {partition_date}: {len(other)} file(s) stamped on another day: {', '.join(other[:5])}"


def plan_load_types(
    obj: SourceObject, partition_date: date, partition_start: date, previous_watermark: datetime | None
) -> list[str]:
    """Which extracts a day gets: full objects a full one; incremental objects a full one on the
    first day, without a watermark, and every ``full_every_days``; a delta (plus keys) otherwise."""
    if obj.extract_mode == "full":
        return ["full"]
    if obj.extract_mode == "keys":
        return ["keys"]
    days_in = (partition_date - partition_start).days
    if previous_watermark is None or (obj.full_every_days and days_in % obj.full_every_days == 0):
        return ["full"]
    return ["delta", "keys"] if obj.keys_extract else ["delta"]


def _open_database(data_dir: LakeRoot, system: SourceSystem) -> duckdb.DuckDBPyConnection:
    assert isinstance(system.connection, DuckDBConnection)
    db_path = inside(local_dir(data_dir), system.connection.database)
    if not db_path.is_file():
        raise SourceUnavailable(
            f"source {system.source!r}: database file {db_path} does not exist "
            f"(connection.database in its source metadata; for the sample run `medallion sample generate`)"
        )
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        raise SourceUnavailable(f"source {system.source!r}: cannot open database {db_path}: {exc}") from exc
    configure(con)  # the budget and no progress bar; an extract keeps the source's row order
    con.execute("SET preserve_insertion_order = true")
    return con


def _source_now(con: duckdb.DuckDBPyConnection, system: SourceSystem) -> datetime:
    query = system.connection.clock_query if isinstance(system.connection, DuckDBConnection) else None
    if query:
        try:
            rows = con.execute(query).fetchall()
            row = rows[0] if rows else None
        except duckdb.Error as exc:
            raise SourceUnavailable(f"source {system.source!r}: connection.clock_query failed: {exc}") from exc
        if not row or not isinstance(row[0], datetime):
            raise SourceUnavailable(f"source {system.source!r}: connection.clock_query must return one timestamp")
        return row[0].replace(microsecond=0, tzinfo=None)
    return utc_now(whole_seconds=True)


def existing_extract(data_dir: LakeRoot, system: SourceSystem, obj: SourceObject, partition_date: date) -> list[LandingFile]:
    return list_landing_files(data_dir, system.source, obj.name, partition_date=partition_date)


def describe_landing_file(
    landing: LandingFile, watermark_column: str | None = None, read_options: dict | None = None
) -> tuple[WrittenFile, datetime | None]:
    """Rows, bytes and the watermark of a landing file already on disk, read with the stated
    dialect the base layer uses; a file that cannot be read is an error naming it (not retried)."""
    from medallion_assets.engine.base.reader import read_landing_file
    from medallion_assets.engine.base.schema import BaseLoadError

    size = landing.path.stat().st_size
    wanted = watermark_column if watermark_column and landing.load_type != "keys" else None
    try:
        if landing.format == "parquet":
            with local_copy(landing.path) as local:
                parquet = pq.ParquetFile(local)
                rows = parquet.metadata.num_rows
                table = parquet.read(columns=[wanted]) if wanted else None
        else:
            table = read_landing_file(landing.path, landing.format, dict(read_options or {}))
            rows = table.num_rows
        watermark = None
        if wanted:
            if wanted not in table.column_names:
                raise SourceUnavailable(f"{landing.path}: landing file has no watermark column {wanted!r}", transient=False)
            watermark = pc.max(pc.cast(table.column(wanted), pa.timestamp("us"))).as_py()
    except BaseLoadError as exc:
        raise SourceUnavailable(str(exc), transient=False) from None
    except (pa.ArrowException, OSError) as exc:
        raise SourceUnavailable(f"{landing.path}: cannot read {landing.format} landing file: {exc}", transient=False) from None
    return WrittenFile(landing.path, landing.load_type, int(rows), size), watermark


def _keep(data_dir: LakeRoot, system: SourceSystem, obj: SourceObject, partition_date: date, files: list[LandingFile]) -> _Extraction:
    result = _Extraction(system.source, obj.name, partition_date, status="kept")
    watermarks = []
    for landing in files:
        written, watermark = describe_landing_file(landing, obj.watermark_column, obj.read_options)
        result.files.append(written)
        if watermark is not None:
            watermarks.append(watermark)
    result.watermark = max(watermarks) if watermarks else None
    result.extracted_at = max(f.extracted_at for f in files)
    result.notes.append("extract already landed for this partition; kept (force a re-extract to replace it)")
    return result


@budgeted(lambda data_dir, system, obj, *args, **kwargs: f"landing {system.source}_{obj.name}")
def extract_object(
    data_dir: LakeRoot,
    system: SourceSystem,
    obj: SourceObject,
    partition_date: date,
    *,
    partition_start: date,
    previous_watermark: datetime | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda message: None,
    database_url: str | None = None,
) -> LoadOutcome:
    """Land one object's extract for one day; see the module docstring for the rules.

    ``database_url`` (from :func:`database_url_for`) reads a SQL database instead of the DuckDB
    file; it is required for ``sql_database`` sources.
    """
    data_dir = as_path(data_dir)
    if isinstance(system.connection, DropFolderConnection):
        return land_dropped_files(data_dir, system, obj, partition_date)
    if isinstance(system.connection, SqlDatabaseConnection) and not database_url:
        database_url_for(system, lambda name: None)  # raises: the variable is not set
    existing = existing_extract(data_dir, system, obj, partition_date)
    if existing and not force:
        return _keep(data_dir, system, obj, partition_date, existing).outcome(data_dir)
    if database_url:
        result = _extract_from_database(
            data_dir, system, obj, partition_date,
            partition_start=partition_start, previous_watermark=previous_watermark, url=database_url, log=log,
        )
    else:
        result = _extract_from_duckdb(
            data_dir, system, obj, partition_date, partition_start=partition_start, previous_watermark=previous_watermark, log=log
        )
    new_paths = {f.path for f in result.files}
    for old in existing:
        if old.path not in new_paths:
            old.path.unlink(missing_ok=True)
            result.removed.append(old.path)
    return result.outcome(data_dir)


def _start_result(system: SourceSystem, obj: SourceObject, partition_date: date, extracted_at: datetime) -> _Extraction:
    result = _Extraction(system.source, obj.name, partition_date, status="extracted", extracted_at=extracted_at)
    if extracted_at.date() != partition_date:
        result.notes.append(
            f"the source clock reads {extracted_at:%Y-%m-%d %H:%M:%S}: a source cannot be read as of a past or "
            f"future day, so this extract shows the source as it is now"
        )
    return result


def _extract_from_database(
    data_dir: LakeRoot,
    system: SourceSystem,
    obj: SourceObject,
    partition_date: date,
    *,
    partition_start: date,
    previous_watermark: datetime | None,
    url: str,
    log: Callable[[str], None],
) -> _Extraction:
    """Stream each planned extract from a SQL database into its landing file, in one snapshot."""
    label = f"source {system.source!r}, object {obj.name!r}" + ("" if obj.query else f", table {obj.source_table!r}")
    with SqlSource(source=system.source, url=url) as database:
        extracted_at = database.now(system.connection.clock_query)
        result = _start_result(system, obj, partition_date, extracted_at)
        for load_type in plan_load_types(obj, partition_date, partition_start, previous_watermark):
            since = None
            if load_type == "delta":
                since = previous_watermark - timedelta(hours=obj.watermark_lookback_hours)
            extract = SourceQuery(
                label=f"{label} ({load_type} extract)",
                table=None if obj.query else obj.source_table,
                query=obj.query,
                columns=tuple(obj.columns) if obj.columns else None,
                watermark_column=obj.watermark_column,
                since=since,
                distinct=tuple(obj.primary_key) if load_type == "keys" else None,
            )
            final = landing_file_path(
                data_dir, system.source, obj.name, load_type, partition_date, extracted_at=extracted_at, fmt=obj.format
            )
            watch = obj.watermark_column if load_type != "keys" else None
            reader = database.read(extract)
            if load_type != "keys":
                named = obj.model_copy(update={"columns": None}) if obj.columns else obj  # the SELECT named them
                check_named_columns(system, named, reader.schema.names, what=f"what {label} returns")
            progress = Progress(f"{system.source}.{obj.name} ({load_type} extract)", log)
            landed = land_batches(reader, final, obj, watermark_column=watch, progress=progress)
            result.files.append(WrittenFile(final, load_type, landed.rows, final.stat().st_size))
            log(f"{system.source}.{obj.name}: {load_type} extract of {landed.rows} rows -> {final}")
            if watch:
                result.watermark = landed.watermark or previous_watermark
    return result


@dataclass
class LandedBatches:
    rows: int = 0
    watermark: datetime | None = None
    error: Exception | None = None  # what stopped the stream, when it did


def land_batches(
    reader: pa.RecordBatchReader,
    final: Path,
    obj: SourceObject,
    *,
    watermark_column: str | None = None,
    progress: Progress | None = None,
) -> LandedBatches:
    """Write a stream of Arrow batches to ``final`` (atomically, in the object's format) as they
    arrive; counts the rows and keeps the highest watermark on the way."""
    landed = LandedBatches()

    def observed():
        try:
            yield from _observe(reader, landed, watermark_column, progress)
        except Exception as exc:
            landed.error = exc
            raise

    stream = pa.RecordBatchReader.from_batches(reader.schema, observed())
    with atomic_path(final) as temp:
        if obj.format == "parquet":  # pyarrow's writer: one row group per batch, nothing held back
            compression = obj.read_options.get("compression", "zstd")
            with pq.ParquetWriter(temp, stream.schema, compression=compression) as writer:
                for batch in stream:
                    writer.write_batch(batch)
            return landed
        con = new_database()  # CSV and JSON exactly as the DuckDB extracts write them
        try:
            con.execute("SET TimeZone = 'UTC'")
            _write_relation(con, con.from_arrow(stream), temp, obj)
        except duckdb.Error as exc:
            if landed.error is not None:  # the source failed mid-stream: its own error, not DuckDB's wrapper
                raise landed.error from None
            raise SourceReadError(f"{final.name}: cannot write the landing file: {exc}", transient=False) from None
        finally:
            con.close()
    return landed


def _observe(reader: pa.RecordBatchReader, landed: LandedBatches, watermark_column: str | None, progress: Progress | None):
    for batch in reader:
        landed.rows += batch.num_rows
        if progress is not None:
            progress.add(batch.num_rows)
        if watermark_column and batch.num_rows:
            high = pc.max(batch.column(watermark_column)).as_py()
            if high is not None:
                high = high.astimezone(UTC).replace(tzinfo=None) if high.tzinfo else high
                landed.watermark = high if landed.watermark is None else max(landed.watermark, high)
        yield batch


def _extract_from_duckdb(
    data_dir: LakeRoot,
    system: SourceSystem,
    obj: SourceObject,
    partition_date: date,
    *,
    partition_start: date,
    previous_watermark: datetime | None,
    log: Callable[[str], None],
) -> _Extraction:
    con = _open_database(data_dir, system)
    try:
        con.begin()  # one snapshot for the data, the keys and the watermark
        extracted_at = _source_now(con, system)
        load_types = plan_load_types(obj, partition_date, partition_start, previous_watermark)
        result = _start_result(system, obj, partition_date, extracted_at)
        table = quote_identifier(obj.source_table)
        found = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        check_named_columns(system, obj, found, what=f"the source table {obj.source_table!r}")
        columns = ", ".join(quote_identifier(c) for c in obj.columns) if obj.columns else "*"
        for load_type in load_types:
            where, params = "", []
            if load_type == "delta":
                since = previous_watermark - timedelta(hours=obj.watermark_lookback_hours)
                where, params = f" WHERE {quote_identifier(obj.watermark_column)} > ?", [since]
            if load_type == "keys":
                key_columns = ", ".join(quote_identifier(c) for c in obj.primary_key)
                query = f"SELECT DISTINCT {key_columns} FROM {table}"
            else:
                query = f"SELECT {columns} FROM {table}{where}"
            final = landing_file_path(
                data_dir, system.source, obj.name, load_type, partition_date, extracted_at=extracted_at, fmt=obj.format
            )
            rows = _copy_query(con, query, params, final, obj)
            result.files.append(WrittenFile(final, load_type, rows, final.stat().st_size))
            log(f"{system.source}.{obj.name}: {load_type} extract of {rows} rows -> {final}")
            if load_type != "keys" and obj.watermark_column:
                (watermark,) = con.execute(
                    f"SELECT max({quote_identifier(obj.watermark_column)}) FROM {table}{where}", params
                ).fetchall()[0]
                result.watermark = watermark or previous_watermark
        con.commit()
    except duckdb.Error as exc:
        raise SourceUnavailable(f"source {system.source!r}, object {obj.name!r}: extract failed: {exc}") from exc
    finally:
        con.close()
    return result


def _copy_query(con: duckdb.DuckDBPyConnection, query: str, params: list, final: Path, obj: SourceObject) -> int:
    """Stream a query into ``final`` through an atomic temporary file; returns the row count."""
    with atomic_path(final) as temp:
        relation = con.sql(query, params=params or None)
        return _write_relation(con, relation, temp, obj)


def _write_relation(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, temp: Path, obj: SourceObject) -> int:
    if obj.format == "parquet":
        relation.write_parquet(str(temp), compression="zstd")
    elif obj.format == "csv":
        relation.write_csv(
            str(temp),
            sep=obj.read_options.get("delimiter", ","),
            header=bool(obj.read_options.get("header", True)),
        )
    else:
        # A record batch stream into a second connection: COPY never holds the whole extract.
        writer = new_database()
        try:
            writer.execute("SET TimeZone = 'UTC'")
            writer.register("extract_batch_arrow", arrow_reader(relation))
            writer.execute(f"COPY extract_batch_arrow TO {path_literal(temp)} (FORMAT json)")
        finally:
            writer.close()
    return _count_rows(temp, obj)


def arrow_reader(relation: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    """A streaming Arrow reader of a DuckDB relation (``to_arrow_reader`` in DuckDB >= 1.4)."""
    reader = getattr(relation, "to_arrow_reader", None)
    return reader() if reader else relation.fetch_record_batch(65_536)


def _count_rows(path: Path, obj: SourceObject) -> int:
    if obj.format == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if obj.format == "csv" and obj.read_options.get("header", True):
        lines -= 1
    return max(lines, 0)


def land_dropped_files(data_dir: LakeRoot, system: SourceSystem, obj: SourceObject, partition_date: date) -> LoadOutcome:
    """Copy the files dropped on ``partition_date`` (by modification time, UTC) into landing.

    Landing names carry the drop time, so re-running a day copies nothing twice; a file dropped
    later the same day is picked up by the next run of that day.
    """
    assert isinstance(system.connection, DropFolderConnection)
    folder = inside(local_dir(data_dir), system.connection.folder)
    if not folder.is_dir():
        raise SourceUnavailable(
            f"source {system.source!r}: drop folder {folder} does not exist (connection.folder in its source metadata)"
        )
    result = _Extraction(system.source, obj.name, partition_date, status="nothing_new")
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith(".") or not fnmatch.fnmatch(entry.name, obj.file_pattern or "*"):
            continue
        dropped_at = datetime.fromtimestamp(entry.stat().st_mtime, tz=UTC).replace(tzinfo=None, microsecond=0)
        if dropped_at.date() != partition_date:
            continue
        final = landing_file_path(data_dir, system.source, obj.name, "full", partition_date, extracted_at=dropped_at, fmt=obj.format)
        if final.exists():
            written, _ = describe_landing_file(parse_landing_file(final, system.source))
            result.files.append(written)
            result.status = "kept" if result.status != "extracted" else result.status
            continue
        copy_file_atomic(Path(entry.path), final)
        written, _ = describe_landing_file(parse_landing_file(final, system.source))
        result.files.append(written)
        result.status = "extracted"
        result.extracted_at = dropped_at
        result.notes.append(f"landed {entry.name}")
    return result.outcome(data_dir)
