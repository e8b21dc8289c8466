"""The curated model: ``metadata/curated/model.yaml`` plus one SQL file per entity.

Everything that can be checked without data is checked when the model loads (the Dagster code
location imports it): YAML fields, SQL syntax, read-only SQL, the tables each SQL reads, curated
tables that do not exist in the model and dependency cycles. Errors name the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.keys import CALENDAR, resolve_key_columns
from medallion_assets.engine.curated.sql import TableRef, output_columns, parse_select
from medallion_assets.engine.metadata import MetadataError, StrictModel, load_model, metadata_root
from medallion_assets.engine.policies import RetrySettings
from medallion_assets.engine.sqltext import check_name

MODEL_FILE = "model.yaml"
DimensionPattern = Literal["scd1", "scd2"]
FactPattern = Literal["overwrite", "append", "merge", "incremental", "replace"]


class CalendarSpec(StrictModel):
    """The generated ``dim_calendar``."""

    start: date
    end: date
    description: str = "One row per day with the smart key calendar_key (yyyymmdd)."
    retry: RetrySettings | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> CalendarSpec:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days > 366 * 200:
            raise ValueError("the calendar may span at most 200 years")
        return self


class DimensionSpec(StrictModel):
    """A dimension ``dim_<name>``: SQL returning one row per business key ``<name>_key``."""

    description: str = ""
    sql: str | None = Field(default=None, description="SQL file next to model.yaml; default dim_<name>.sql")
    write_pattern: DimensionPattern = "scd1"
    valid_from_column: str | None = Field(
        default=None, description="scd2: column whose value starts a new version; load time when unset"
    )
    first_valid_from: datetime | None = Field(
        default=datetime(1900, 1, 1),
        description="scd2: start of a key's first version, so older facts find it; unset = the valid-from value",
    )
    full_load: bool = Field(default=False, description="soft-delete keys the SQL no longer returns")
    recreate: bool = Field(default=False, description="rebuild the table from scratch on every load (new ids)")
    early_arriving_facts: bool = Field(
        default=False, description="facts create inferred members for business keys not yet in the dimension"
    )
    unknown_member: dict[str, Any] = Field(default_factory=dict, description="column defaults of the -1 row")
    column_descriptions: dict[str, str] = Field(
        default_factory=dict, description="column -> text shown as the column's description in the UI"
    )
    retry: RetrySettings | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("valid_from_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="column")

    @field_validator("column_descriptions")
    @classmethod
    def _described(cls, value: dict[str, str]) -> dict[str, str]:
        return {check_name(column, what="column"): text for column, text in value.items()}

    @model_validator(mode="after")
    def _scd2_only(self) -> DimensionSpec:
        if self.write_pattern != "scd2" and self.valid_from_column is not None:
            raise ValueError("valid_from_column applies to write_pattern scd2 only")
        for column in self.unknown_member:
            check_name(column, what="unknown_member column")
        return self


class FactSpec(StrictModel):
    """A fact ``fact_<name>`` or bridge ``bridge_<name>`` from SQL."""

    description: str = ""
    sql: str | None = Field(default=None, description="SQL file next to model.yaml; default <table>.sql")
    write_pattern: FactPattern = "overwrite"
    primary_key: list[str] = Field(default_factory=list, description="merge: the columns identifying a row")
    date_column: str = Field(default="calendar_key", description="incremental: the date (or yyyymmdd) column")
    range_column: str | None = Field(default=None, description="replace: the column whose batch range is replaced")
    map_keys: bool = Field(default=True, description="map <dimension>[_<role>]_key columns to surrogate ids")
    max_unknown_share: float = Field(
        default=0.05, ge=0, le=1, description="check: highest share of rows mapped to -1 per key column"
    )
    unknown_share_overrides: dict[str, float] = Field(
        default_factory=dict, description="check: per mapped column (e.g. calendar_ship_key), its own limit"
    )
    unknown_share_blocking: bool = Field(
        default=False,
        description="check: a share of -1 above the limit fails the check as an error that blocks downstream assets",
    )
    column_descriptions: dict[str, str] = Field(
        default_factory=dict, description="column -> text shown as the column's description in the UI"
    )
    degenerate_keys: list[str] = Field(
        default_factory=list, description="*_key columns that are not dimension references (kept as they are)"
    )
    scd2_date_column: str = Field(
        default="calendar_key", description="yyyymmdd column used to pick the SCD2 version valid on the fact's date"
    )
    retry: RetrySettings | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("primary_key", "degenerate_keys")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        return [check_name(v, what="column") for v in value]

    @field_validator("column_descriptions")
    @classmethod
    def _described(cls, value: dict[str, str]) -> dict[str, str]:
        return {check_name(column, what="column"): text for column, text in value.items()}

    @field_validator("date_column", "range_column", "scd2_date_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="column")

    @model_validator(mode="after")
    def _pattern_needs(self) -> FactSpec:
        if self.write_pattern == "merge" and not self.primary_key:
            raise ValueError("write_pattern merge needs primary_key")
        if self.write_pattern == "replace" and not self.range_column:
            raise ValueError("write_pattern replace needs range_column")
        return self


class CuratedSpec(StrictModel):
    calendar: CalendarSpec | None = None
    dimensions: dict[str, DimensionSpec] = Field(default_factory=dict)
    facts: dict[str, FactSpec] = Field(default_factory=dict)
    bridges: dict[str, FactSpec] = Field(default_factory=dict)

    @field_validator("dimensions", "facts", "bridges")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            check_name(name, what="entity name")
        return value

    @model_validator(mode="after")
    def _reserved(self) -> CuratedSpec:
        if CALENDAR in self.dimensions:
            raise ValueError("dimension 'calendar' is generated; configure it under the top-level 'calendar' key")
        return self


@dataclass(frozen=True)
class CalendarMeta:
    spec: CalendarSpec
    name: str = CALENDAR

    @property
    def table(self) -> str:
        return "dim_calendar"

    @property
    def reads(self) -> tuple[TableRef, ...]:
        return ()


@dataclass(frozen=True)
class DimensionMeta:
    name: str
    spec: DimensionSpec
    sql: str
    sql_path: Path
    reads: tuple[TableRef, ...]

    @property
    def table(self) -> str:
        return f"dim_{self.name}"

    @property
    def id_column(self) -> str:
        return f"{self.name}_id"

    @property
    def business_key(self) -> str:
        return f"{self.name}_key"

    @property
    def is_scd2(self) -> bool:
        return self.spec.write_pattern == "scd2"


@dataclass(frozen=True)
class FactMeta:
    kind: Literal["fact", "bridge"]
    name: str
    spec: FactSpec
    sql: str
    sql_path: Path
    reads: tuple[TableRef, ...]
    # name -> dimension of the model, used to map keys; the calendar included when configured
    dimensions: dict[str, DimensionMeta | CalendarMeta] = field(default_factory=dict, compare=False, repr=False)

    @property
    def table(self) -> str:
        return f"{self.kind}_{self.name}"

    @property
    def is_partitioned(self) -> bool:
        return self.spec.write_pattern == "incremental"


@dataclass(frozen=True)
class CuratedModel:
    folder: Path
    calendar: CalendarMeta | None
    dimensions: dict[str, DimensionMeta]
    facts: dict[str, FactMeta]  # facts and bridges, by table name

    def dimension_tables(self) -> dict[str, DimensionMeta | CalendarMeta]:
        """Dimensions by their short name (``customer``), the calendar included."""
        out: dict[str, DimensionMeta | CalendarMeta] = dict(self.dimensions)
        if self.calendar is not None:
            out[CALENDAR] = self.calendar
        return out

    def tables(self) -> set[str]:
        names = {d.table for d in self.dimensions.values()} | set(self.facts)
        if self.calendar is not None:
            names.add(self.calendar.table)
        return names


def default_model_folder() -> Path:
    return metadata_root() / "curated"


def load_curated_model(folder: Path | None = None) -> CuratedModel:
    """Load and statically validate the curated model in ``folder`` (default: the package's)."""
    folder = Path(folder) if folder is not None else default_model_folder()
    yaml_path = folder / MODEL_FILE
    spec = load_model(yaml_path, CuratedSpec)
    calendar = CalendarMeta(spec.calendar) if spec.calendar is not None else None

    dimensions: dict[str, DimensionMeta] = {}
    for name, dim_spec in spec.dimensions.items():
        path, sql, reads = _read_sql(folder, yaml_path, dim_spec.sql or f"dim_{name}.sql", f"dimension '{name}'")
        dimensions[name] = DimensionMeta(name=name, spec=dim_spec, sql=sql, sql_path=path, reads=reads)

    dims_by_name: dict[str, DimensionMeta | CalendarMeta] = dict(dimensions)
    if calendar is not None:
        dims_by_name[CALENDAR] = calendar
    facts: dict[str, FactMeta] = {}
    for kind, entries in (("fact", spec.facts), ("bridge", spec.bridges)):
        for name, fact_spec in entries.items():
            table = f"{kind}_{name}"
            path, sql, reads = _read_sql(folder, yaml_path, fact_spec.sql or f"{table}.sql", f"{kind} '{name}'")
            facts[table] = FactMeta(
                kind=kind, name=name, spec=fact_spec, sql=sql, sql_path=path, reads=reads, dimensions=dims_by_name
            )

    model = CuratedModel(folder=folder, calendar=calendar, dimensions=dimensions, facts=facts)
    _check_curated_reads(model)
    _check_fact_keys(model)
    return model


def _check_fact_keys(model: CuratedModel) -> None:
    """Every ``*_key`` column a fact's SQL returns names a dimension of the model or is listed in
    ``degenerate_keys``: checked from the SQL text, so the code location fails before any run.
    Columns behind ``*`` are checked at run time instead."""
    for fact in model.facts.values():
        columns = output_columns(fact.sql)
        if not fact.spec.map_keys or columns is None:
            continue
        try:
            resolve_key_columns(columns, fact.dimensions, degenerate=fact.spec.degenerate_keys, source=str(fact.sql_path))
        except CuratedError as exc:
            raise MetadataError(f"{exc} (model.yaml: {model.folder / MODEL_FILE})") from None


def _read_sql(folder: Path, yaml_path: Path, relative: str, entry: str) -> tuple[Path, str, tuple[TableRef, ...]]:
    path = (folder / relative).resolve()
    if folder.resolve() not in path.parents:
        raise MetadataError(f"{yaml_path}: {entry}: field 'sql': {relative!r} is outside {folder}")
    try:
        sql = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MetadataError(f"{yaml_path}: {entry}: SQL file {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        reads = parse_select(sql, source=str(path))
    except CuratedError as exc:
        raise MetadataError(str(exc)) from None
    return path, sql, reads


def _check_curated_reads(model: CuratedModel) -> None:
    """Curated tables read by SQL must be entities of the model, without cycles."""
    known = model.tables()
    graph: dict[str, list[str]] = {}
    sources: dict[str, Path] = {}
    for meta in [*model.dimensions.values(), *model.facts.values()]:
        sources[meta.table] = meta.sql_path
        graph[meta.table] = []
        for ref in meta.reads:
            if ref.schema != "curated":
                continue
            if ref.table not in known:
                raise MetadataError(f"{meta.sql_path}: reads {ref}, which is not a table of the curated model")
            graph[meta.table].append(ref.table)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = " -> ".join([*trail[trail.index(node):], node])
            raise MetadataError(f"{sources.get(node, node)}: curated tables read each other in a cycle: {cycle}")
        state[node] = 1
        for nxt in graph.get(node, []):
            visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        visit(node, [])
