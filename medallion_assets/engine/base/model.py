"""Base-table metadata: one YAML file per source under ``metadata/base/``, validated with pydantic.

A file looks like::

    source: erp
    tables:
      customer:                      # the landing object; destination defaults to erp_customer
        write_behaviour: scd2
        business_keys: [customer_id]
        modify_date_column: modified_at
        history_columns: [segment, city, country, email]

Format and read options default from the source metadata (``metadata/sources/<source>.yaml``),
so the two cannot disagree unless a table says so on purpose. Everything is checked at load time;
an error names the file, the table entry and the field.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from medallion_assets.engine.landing.sources import READ_OPTIONS
from medallion_assets.engine.metadata import (
    MetadataError,
    StrictModel,
    describe_validation_error,
    metadata_root,
    read_yaml,
)
from medallion_assets.engine.policies import RetrySettings
from medallion_assets.engine.sqltext import check_name, is_snake_case
from medallion_assets.engine.storage.lake import LakeRoot
from medallion_assets.engine.storage.paths import inside

ReadBehaviour = Literal["full", "auto"]
WriteBehaviour = Literal["overwrite", "append", "scd1", "scd2"]
FileFormat = Literal["csv", "parquet", "json"]
KEYED = ("scd1", "scd2")

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
# A SQL type name as DuckDB spells it, optionally with precision: DECIMAL(12,2), VARCHAR, TIMESTAMP.
_SQL_TYPE = re.compile(r"^[A-Za-z][A-Za-z ]*[A-Za-z](\(\s*\d+\s*(,\s*\d+\s*)?\))?$")


class QualityRule(StrictModel):
    """A row-level check; failing rows go to the quarantine table instead of the base table."""

    name: str
    column: str
    not_null: bool = False
    allowed_values: list[Any] | None = None
    min: float | int | str | None = None
    max: float | int | str | None = None
    pattern: str | None = Field(default=None, description="regular expression the text value must match")

    @field_validator("name", "column")
    @classmethod
    def _names(cls, value: str) -> str:
        return check_name(value, what="rule name / column")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_check(self) -> QualityRule:
        if not (self.not_null or self.allowed_values is not None or self.min is not None or self.max is not None or self.pattern):
            raise ValueError("a rule needs at least one check: not_null, allowed_values, min, max or pattern")
        return self


class DeleteCondition(StrictModel):
    """Rows matching this are delete events (e.g. an operation column equal to 'D')."""

    column: str
    equals: Any | None = None
    in_: list[Any] | None = Field(default=None, alias="in")

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return check_name(value, what="column")

    @model_validator(mode="after")
    def _one_test(self) -> DeleteCondition:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("give exactly one of 'equals' or 'in'")
        return self

    @property
    def values(self) -> list[Any]:
        return [self.equals] if self.in_ is None else list(self.in_)


class LandingRef(StrictModel):
    source: str
    object: str

    @property
    def asset_name(self) -> str:
        return f"{self.source}_{self.object}"


class BaseTable(StrictModel):
    """One destination Delta table in the base layer and how to load it."""

    object: str
    source: str
    name: str = Field(description="destination table; base/<name>/ and asset key ['base', name]")
    landing: list[LandingRef]
    description: str = ""
    format: FileFormat
    read_options: dict[str, Any] = Field(default_factory=dict)
    read_behaviour: ReadBehaviour = "auto"
    write_behaviour: WriteBehaviour
    business_keys: list[str] = Field(default_factory=list)
    columns: list[str] | None = Field(default=None, description="projection, after translations; all when unset")
    column_types: dict[str, str] = Field(default_factory=dict, description="casts for text formats, e.g. DECIMAL(12,2)")
    modify_date_column: str | None = None
    translations: dict[str, str] = Field(default_factory=dict, description="renames: source column -> base column")
    column_descriptions: dict[str, str] = Field(
        default_factory=dict, description="base column -> text shown as the column's description in the UI"
    )
    history_columns: list[str] | None = Field(default=None, description="scd2: track history on these only")
    partition_by: list[str] = Field(default_factory=list)
    recreate: bool = False
    allow_empty_full_extract: bool = Field(
        default=False,
        description="accept a full or keys extract with no rows (it deletes every stored key); refused by default",
    )
    include: bool = True
    transformation: str | None = Field(default=None, description="dotted path of f(table) -> table")
    quality_rules: list[QualityRule] = Field(default_factory=list)
    delete_condition: DeleteCondition | None = None
    retry: RetrySettings | None = Field(default=None, description="asset retry policy; project defaults when unset")
    timeout_seconds: float | None = Field(default=None, gt=0, description="step timeout; project default when unset")
    _file: Path | None = PrivateAttr(default=None)

    @property
    def file(self) -> str:
        """The metadata file this table was declared in, for messages."""
        return str(self._file) if self._file else "its base metadata file"

    @field_validator("object", "source", "name")
    @classmethod
    def _table_names(cls, value: str) -> str:
        return check_name(value, what="name")

    @field_validator("business_keys", "partition_by", "history_columns")
    @classmethod
    def _column_lists(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            check_name(item, what="column")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("columns are listed more than once")
        return value

    @field_validator("columns")
    @classmethod
    def _projection(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            check_name(item, what="column")
            if item.startswith("lh_"):
                raise ValueError(f"column {item!r}: the lh_ prefix is reserved for system columns")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("columns are listed more than once")
        return value

    @field_validator("modify_date_column")
    @classmethod
    def _modify(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="column")

    @field_validator("translations")
    @classmethod
    def _translations(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            if not isinstance(source, str) or not source:
                raise ValueError("translation source names must be non-empty text")
            check_name(target, what=f"translation target of {source!r}")
        if len(set(value.values())) != len(value):
            raise ValueError("two translations rename to the same column")
        return value

    @field_validator("column_types")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, sql_type in value.items():
            check_name(column, what="column")
            if not isinstance(sql_type, str) or not _SQL_TYPE.match(sql_type.strip()):
                raise ValueError(f"column_types.{column}: {sql_type!r} is not a SQL type name like DECIMAL(12,2)")
        return value

    @field_validator("transformation")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        if value is not None and not _DOTTED.match(value):
            raise ValueError("transformation must be a dotted path 'package.module.function'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BaseTable:
        keyed = self.write_behaviour in KEYED
        if keyed and not self.business_keys:
            raise ValueError(f"field 'business_keys': required for write behaviour {self.write_behaviour!r}")
        if self.history_columns is not None and self.write_behaviour != "scd2":
            raise ValueError("field 'history_columns': only for write behaviour 'scd2'")
        if self.delete_condition is not None and not keyed:
            raise ValueError("field 'delete_condition': only for keyed write behaviours (scd1, scd2)")
        for column in self.business_keys:
            if column in (self.history_columns or []):
                raise ValueError(f"field 'history_columns': {column!r} is a business key, not an attribute")
        if self.columns is not None:
            listed = set(self.columns)
            for field_name, needed in (
                ("business_keys", self.business_keys),
                ("partition_by", self.partition_by),
                ("history_columns", self.history_columns or []),
                ("modify_date_column", [self.modify_date_column] if self.modify_date_column else []),
            ):
                missing = [c for c in needed if c not in listed]
                if missing:
                    raise ValueError(f"field '{field_name}': {missing} not among the projected columns")
        unknown = set(self.read_options) - READ_OPTIONS[self.format]
        if unknown:
            allowed = ", ".join(sorted(READ_OPTIONS[self.format])) or "none"
            raise ValueError(f"field 'read_options': {sorted(unknown)} not understood for {self.format!r} (allowed: {allowed})")
        return self

    @property
    def keyed(self) -> bool:
        return self.write_behaviour in KEYED


class BaseFile(StrictModel):
    source: str
    description: str = ""
    tables: dict[str, BaseTable]


def _source_defaults(sources_folder: Path, source: str) -> dict[str, Any]:
    """Object -> {format, read_options} from the source metadata, read as plain YAML."""
    path = sources_folder / f"{source}.yaml"
    if not path.is_file():
        return {}
    raw = read_yaml(path) or {}
    objects = raw.get("objects") if isinstance(raw, dict) else None
    if not isinstance(objects, dict):
        return {}
    return {name: spec for name, spec in objects.items() if isinstance(spec, dict)}


def _prepare_entries(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Fill names, landing refs, format and read options before validation."""
    source = raw.get("source")
    tables = raw.get("tables")
    if not isinstance(tables, dict):
        return raw
    prepared: dict[str, Any] = {}
    for obj, spec in tables.items():
        if not isinstance(spec, dict):
            prepared[obj] = spec
            continue
        entry = dict(spec)
        entry.setdefault("object", obj)
        entry.setdefault("source", source)
        entry.setdefault("name", f"{source}_{obj}" if isinstance(source, str) else obj)
        landing = entry.get("landing")
        if landing is None:
            entry["landing"] = [{"source": source, "object": obj}]
        elif isinstance(landing, list):
            refs = []
            for item in landing:
                refs.append(_landing_ref(item))
            entry["landing"] = refs
        source_obj = defaults.get(obj, {})
        if "format" not in entry and "format" in source_obj:
            entry["format"] = source_obj["format"]
        if "read_options" not in entry and isinstance(source_obj.get("read_options"), dict):
            entry["read_options"] = source_obj["read_options"]
        prepared[obj] = entry
    return {**raw, "tables": prepared}


def _landing_ref(item: object) -> object:
    """``"source/object"`` as a mapping; anything else is left for the model to reject."""
    if isinstance(item, str):
        source, slash, obj = item.partition("/")
        if slash and is_snake_case(source) and is_snake_case(obj):
            return {"source": source, "object": obj}
    return item


def load_base_file(path: Path, sources_folder: Path | None = None) -> BaseFile:
    """Validate one base metadata file; a problem is a :class:`MetadataError` naming file/table/field."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise MetadataError(f"{path}: expected a mapping with 'source' and 'tables'")
    if raw.get("source") != path.stem:
        raise MetadataError(f"{path}: field 'source': {raw.get('source')!r} must match the file name {path.stem!r}")
    sources_folder = sources_folder or metadata_root() / "sources"
    prepared = _prepare_entries(raw, _source_defaults(sources_folder, path.stem))
    try:
        model = BaseFile.model_validate(prepared)
    except ValidationError as exc:
        raise MetadataError(describe_validation_error(path, exc, entry_label="table")) from None
    for obj, table in model.tables.items():
        table._file = path
        for ref in table.landing:
            for what, value in (("source", ref.source), ("object", ref.object)):
                if not is_snake_case(value):
                    raise MetadataError(f"{path}: table '{obj}': field 'landing': {what} {value!r} is not lower snake_case")
    return model


@lru_cache(maxsize=8)
def load_base_tables(folder: Path | None = None, sources_folder: Path | None = None) -> tuple[BaseTable, ...]:
    """Every base table declared under ``folder`` (default: the package's ``metadata/base``)."""
    folder = Path(folder) if folder else metadata_root() / "base"
    if not folder.is_dir():
        raise MetadataError(f"{folder}: base metadata folder does not exist")
    tables: list[BaseTable] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        for obj, table in load_base_file(path, sources_folder).tables.items():
            if table.name in seen:
                raise MetadataError(
                    f"{path}: table '{obj}': field 'name': destination {table.name!r} is also declared in {seen[table.name]}"
                )
            seen[table.name] = path
            tables.append(table)
    return tuple(tables)


# --- where a table's files live under the data root ---------------------------------------


def table_path(data_dir: LakeRoot, table: BaseTable) -> Path:
    return inside(data_dir, f"base/{table.name}")


def state_path(data_dir: LakeRoot, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_state/{table.name}")


def quarantine_path(data_dir: LakeRoot, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_quarantine/{table.name}")


def lock_path(data_dir: LakeRoot, table: BaseTable) -> Path:
    return inside(data_dir, f"base/_locks/{table.name}.lock")


__all__ = [
    "BaseFile",
    "BaseTable",
    "DeleteCondition",
    "LandingRef",
    "QualityRule",
    "load_base_file",
    "load_base_tables",
    "lock_path",
    "quarantine_path",
    "state_path",
    "table_path",
]
