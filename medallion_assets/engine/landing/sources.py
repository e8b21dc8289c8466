"""Source metadata: source systems, their connection and their objects.

One YAML file per source system under ``metadata/sources/``. Validated once, when the code
location loads, so a typo is an error naming the file, the object and the field before any run.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from medallion_assets.engine.metadata import MetadataError, StrictModel, load_model, metadata_root
from medallion_assets.engine.policies import RetrySettings
from medallion_assets.engine.sqltext import check_name
from medallion_assets.engine.sqltree import SqlRejected, parse_single_select, table_functions

ExtractMode = Literal["full", "incremental", "keys"]
FileFormat = Literal["csv", "parquet", "json"]

# Read options per format, in one place. The landing reader (``base.reader.read_landing_file``)
# honours every csv and json option here; it reads file drops, describes new landing files and
# loads Base. The extract writer honours csv ``delimiter``/``header`` and parquet ``compression``.
# A base table may state any of them (its source object's options are its defaults). A source
# object may not state the options that only describe someone else's files (rows to skip, an
# escape character, a json record layout): the extract writer never produces such files.
READ_OPTIONS: dict[str, frozenset[str]] = {
    "csv": frozenset({"delimiter", "header", "quote_char", "escape_char", "encoding", "null_values", "skip_rows"}),
    "parquet": frozenset({"compression"}),
    "json": frozenset({"records"}),
}
_READER_ONLY = {"csv": {"escape_char", "skip_rows"}, "parquet": set(), "json": {"records"}}
SOURCE_READ_OPTIONS: dict[str, frozenset[str]] = {fmt: names - _READER_ONLY[fmt] for fmt, names in READ_OPTIONS.items()}


def _relative_inside(value: str) -> str:
    """Paths in metadata stay below the data root: relative, without ``..`` (symlinks are
    checked again when the path is used)."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or value.startswith("~") or ".." in path.parts:
        raise ValueError(f"path {value!r} must be relative to the data root and may not contain '..'")
    return value


def _read_only_clock(value: str | None) -> str | None:
    # It runs against the source with file access on: one SELECT, no file-reading functions.
    if value is None:
        return value
    try:
        statement = parse_single_select(value)
    except SqlRejected as exc:
        raise ValueError(f"clock_query rejected: {exc}") from None
    if functions := table_functions(statement):
        raise ValueError(f"clock_query may not call table functions ({', '.join(sorted(functions))})")
    return value


def _env_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise ValueError(f"url_env {value!r} must name an environment variable (UPPER_SNAKE_CASE), not hold a URL")
    return value


class DuckDBConnection(StrictModel):
    """A source system reachable as a DuckDB database file (the sample ERP).

    With ``url_env``, the SQL database named by that environment variable is read instead when
    the variable is set (the sample ERP in PostgreSQL); the file is the fallback.
    """

    type: Literal["duckdb"]
    database: str = Field(description="database file, relative to the data root")
    url_env: str | None = Field(
        default=None, description="environment variable with a SQLAlchemy URL that replaces the file when set"
    )
    clock_query: str | None = Field(
        default=None, description="SQL returning the source's current timestamp; wall clock when unset"
    )

    @field_validator("database")
    @classmethod
    def _database_inside(cls, value: str) -> str:
        return _relative_inside(value)

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("clock_query")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        return _read_only_clock(value)


class SqlDatabaseConnection(StrictModel):
    """A SQL database (PostgreSQL, MariaDB/MySQL, SQL Server, Oracle, SQLite, ...) whose
    SQLAlchemy URL is in the environment variable ``url_env``; the URL never sits in metadata."""

    type: Literal["sql_database"]
    url_env: str = Field(description="environment variable holding the SQLAlchemy URL (with its password)")
    clock_query: str | None = Field(
        default=None, description="SQL returning the source's current timestamp; wall clock when unset"
    )

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("clock_query")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        return _read_only_clock(value)


class DropFolderConnection(StrictModel):
    """A source that pushes files into a folder (finance's budget)."""

    type: Literal["drop_folder"]
    folder: str = Field(description="drop folder, relative to the data root")

    @field_validator("folder")
    @classmethod
    def _folder_inside(cls, value: str) -> str:
        return _relative_inside(value)


Connection = Annotated[DuckDBConnection | SqlDatabaseConnection | DropFolderConnection, Field(discriminator="type")]


class SourceObject(StrictModel):
    name: str
    table: str | None = Field(default=None, description="table in the source database; defaults to the name")
    query: str | None = Field(
        default=None, description="a SELECT to extract instead of a table (a view, a join); filters are added around it"
    )
    file_pattern: str | None = Field(default=None, description="glob of dropped files, for drop-folder sources")
    extract_mode: ExtractMode
    watermark_column: str | None = None
    watermark_lookback_hours: int = Field(default=0, ge=0)
    primary_key: list[str] = Field(default_factory=list)
    full_every_days: int | None = Field(
        default=None, ge=1, description="incremental objects: a full extract every N days from the partition start"
    )
    keys_extract: bool = Field(default=False, description="incremental objects: also land a keys extract each day")
    columns: list[str] | None = Field(default=None, description="columns to extract; all when unset")
    format: FileFormat
    read_options: dict[str, Any] = Field(default_factory=dict)
    include: bool = True
    retry: RetrySettings | None = Field(default=None, description="overrides the default retry policy")
    timeout_seconds: float | None = Field(default=None, gt=0, description="overrides the default step timeout")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, what="object name")

    @field_validator("table", "watermark_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="identifier")

    @field_validator("primary_key", "columns")
    @classmethod
    def _identifiers(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            check_name(item, what="column")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SourceObject:
        if self.query is not None and self.table is not None:
            raise ValueError("give either table or query, not both")
        if self.extract_mode == "incremental" and not self.watermark_column:
            raise ValueError("extract_mode 'incremental' needs a watermark_column")
        if self.extract_mode == "keys" and not self.primary_key:
            raise ValueError("extract_mode 'keys' needs a primary_key")
        if self.keys_extract and not self.primary_key:
            raise ValueError("keys_extract needs a primary_key")
        unknown = set(self.read_options) - SOURCE_READ_OPTIONS[self.format]
        if unknown:
            allowed = ", ".join(sorted(SOURCE_READ_OPTIONS[self.format])) or "none"
            raise ValueError(
                f"read_options {sorted(unknown)} are not understood for format {self.format!r} (allowed: {allowed})"
            )
        delimiter = self.read_options.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ValueError("read_options.delimiter must be a single character")
        return self

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str | None) -> str | None:
        # Run as a subquery, so it must be one SELECT (or WITH ... SELECT) and nothing after it.
        if value is None:
            return value
        text = value.strip().rstrip(";").strip()
        if ";" in text or not re.match(r"(?is)^(select|with)\b", text):
            raise ValueError("query must be a single SELECT (or WITH ... SELECT) statement")
        return text

    @property
    def source_table(self) -> str:
        return self.table or self.name


class SourceSystem(StrictModel):
    source: str
    description: str = ""
    connection: Connection
    objects: dict[str, SourceObject]
    _file: Path | None = PrivateAttr(default=None)

    @property
    def file(self) -> str:
        """The metadata file this system was read from, for messages."""
        return str(self._file) if self._file else f"sources/{self.source}.yaml"

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return check_name(value, what="source name")

    @model_validator(mode="before")
    @classmethod
    def _name_objects(cls, data: Any) -> Any:
        # Objects are keyed by name in YAML; copy the key into each entry.
        if isinstance(data, dict) and isinstance(data.get("objects"), dict):
            data = dict(data)
            data["objects"] = {
                key: ({"name": key, **value} if isinstance(value, dict) else value)
                for key, value in data["objects"].items()
            }
        return data

    @model_validator(mode="after")
    def _objects_fit_connection(self) -> SourceSystem:
        for obj in self.objects.values():
            if isinstance(self.connection, DropFolderConnection):
                if not obj.file_pattern:
                    raise ValueError(f"object {obj.name!r}: a drop-folder source needs file_pattern")
                if obj.extract_mode != "full":
                    raise ValueError(f"object {obj.name!r}: dropped files are full extracts (extract_mode: full)")
            elif obj.query is not None and isinstance(self.connection, DuckDBConnection) and not self.connection.url_env:
                raise ValueError(f"object {obj.name!r}: query is for sql_database sources")
            elif obj.file_pattern:
                raise ValueError(f"object {obj.name!r}: file_pattern is only for drop-folder sources")
        return self

    def included_objects(self) -> list[SourceObject]:
        return [obj for obj in self.objects.values() if obj.include]


def load_source_file(path: Path) -> SourceSystem:
    system = load_model(path, SourceSystem, entry_label="object")
    if system.source != path.stem:
        raise MetadataError(f"{path}: field 'source': {system.source!r} must match the file name {path.stem!r}")
    system._file = path
    return system


@lru_cache(maxsize=8)
def load_sources(folder: Path | None = None) -> dict[str, SourceSystem]:
    """Every source system under ``folder`` (default: the package's ``metadata/sources``)."""
    folder = Path(folder) if folder else metadata_root() / "sources"
    if not folder.is_dir():
        raise MetadataError(f"{folder}: source metadata folder does not exist")
    systems: dict[str, SourceSystem] = {}
    for path in sorted(folder.glob("*.yaml")):
        system = load_source_file(path)
        systems[system.source] = system
    return systems
