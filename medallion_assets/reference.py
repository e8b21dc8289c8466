"""The key tables of ``docs/reference.md``, rendered from the pydantic metadata models.

The reference page keeps prose and examples by hand; every table of keys between
``<!-- keys:NAME -->`` and ``<!-- /keys:NAME -->`` is generated here, so no field is missed and
none drifts. ``python -m medallion_assets.reference`` rewrites the tables in place; a test
fails when the page and the models disagree.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from medallion_assets.engine.base.model import BaseFile, BaseTable, DeleteCondition, QualityRule
from medallion_assets.engine.curated.model import CalendarSpec, CuratedSpec, DimensionSpec, FactSpec
from medallion_assets.engine.landing.sources import (
    Connection,
    DropFolderConnection,
    DuckDBConnection,
    SourceObject,
    SourceSystem,
    SqlDatabaseConnection,
)
from medallion_assets.engine.policies import RetrySettings
from medallion_assets.engine.project import (
    ChecksSettings,
    PartitionSettings,
    ProjectSettings,
    ScheduleSettings,
    SchedulesSettings,
)
from medallion_assets.engine.storage.paths import repository_root

REFERENCE = Path("docs") / "reference.md"
_BLOCK = re.compile(r"(<!-- keys:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /keys:(?P=name) -->)", re.S)
# Keys the loader fills in from the YAML layout, never written by hand.
_IMPLIED = {SourceObject: {"name"}}
# Meanings of fields whose model carries no description (the models stay as their owners wrote them).
_MEANING: dict[tuple[type[BaseModel], str], str] = {
    (ProjectSettings, "partitions"): "daily partitions of landing, base and incremental facts",
    (ProjectSettings, "schedules"): "when the schedules run",
    (ProjectSettings, "checks"): "project-wide check settings",
    (SourceSystem, "source"): "name of the source system; must equal the file name (`<source>.yaml`)",
    (SourceSystem, "description"): "shown in the UI",
    (SourceSystem, "connection"): "how the source is reached; one of the connection types below (`type:` picks it)",
    (SourceSystem, "objects"): "the objects to land, by name; each becomes the asset `landing/<source>_<object>`",
    (SourceObject, "name"): "the object's name (the key under `objects:`)",
    (SourceObject, "extract_mode"): "`full`: the whole table each day; `incremental`: rows whose watermark passed the last one; `keys`: primary keys only",
    (SourceObject, "watermark_column"): "incremental: the column (or, where the connection supports it, expression) compared with the last watermark",
    (SourceObject, "watermark_lookback_hours"): "incremental: start this many hours before the last watermark, to catch late rows",
    (SourceObject, "primary_key"): "columns identifying a row in the source (keys extracts, duplicate checks)",
    (SourceObject, "format"): "file format of the landed extract",
    (SourceObject, "read_options"): "how the files are written and read: csv `delimiter`, `header`, `quote_char`, `encoding`, `null_values`; parquet `compression`",
    (SourceObject, "include"): "`false` switches the object off, and with it every base table and curated entity that depends on it",
    (DuckDBConnection, "type"): "`duckdb`",
    (SqlDatabaseConnection, "type"): "`sql_database`: any SQLAlchemy URL; PostgreSQL is read with ADBC, MariaDB/MySQL with PyMySQL, SQLite built in",
    (DropFolderConnection, "type"): "`drop_folder`: the source pushes files; each file that matches is landed as a full extract",
    (BaseFile, "source"): "the source system; must equal the file name (`base/<source>.yaml`)",
    (BaseFile, "description"): "shown in the UI",
    (BaseFile, "tables"): "base tables by landing object name; each becomes the asset `base/<name>`",
    (BaseTable, "object"): "the landing object read (the key under `tables:`)",
    (BaseTable, "source"): "the source system (the file's `source:`)",
    (BaseTable, "landing"): "landing objects read, as `source/object`; default the entry's own object. Each must be declared in the sources metadata",
    (BaseTable, "description"): "shown in the UI",
    (BaseTable, "format"): "landing file format; defaults to the source object's `format`",
    (BaseTable, "read_options"): "defaults to the source object's `read_options`; csv also takes `escape_char` and `skip_rows`, json `records`",
    (BaseTable, "read_behaviour"): "which landing files of a partition are read: `full` the newest full extract only; `auto` the newest full extract plus every later delta and the newest keys extract",
    (BaseTable, "write_behaviour"): "`overwrite` replaces the table; `append` adds rows; `scd1` keeps the latest version per key; `scd2` keeps every version with validity",
    (BaseTable, "business_keys"): "columns identifying a row; required for scd1 and scd2",
    (BaseTable, "modify_date_column"): "source column with the row's last change; orders versions and starts SCD2 validity (the extract time when unset)",
    (BaseTable, "partition_by"): "Delta partition columns of the base table",
    (BaseTable, "recreate"): "rebuild the table from every landing partition up to the one being loaded, then swap it in",
    (BaseTable, "include"): "`false` leaves the table out, and every curated entity that reads it",
    (BaseTable, "quality_rules"): "row checks; failing rows go to quarantine (`base/_quarantine/<name>`)",
    (BaseTable, "delete_condition"): "rows matching it are delete events (for example `{column: op, equals: D}`)",
    (QualityRule, "name"): "rule name, recorded in `lh_quarantine_rules`",
    (QualityRule, "column"): "the column checked",
    (QualityRule, "not_null"): "the value may not be null",
    (QualityRule, "allowed_values"): "the value must be one of these",
    (QualityRule, "min"): "lowest allowed value",
    (QualityRule, "max"): "highest allowed value",
    (DeleteCondition, "column"): "the column that marks delete events",
    (DeleteCondition, "equals"): "a row is a delete when the column equals this",
    (DeleteCondition, "in_"): "a row is a delete when the column is one of these",
    (RetrySettings, "max_retries"): "more attempts after the first (transient failures)",
    (RetrySettings, "delay_seconds"): "wait before the first retry",
    (RetrySettings, "backoff"): "how the wait grows with each attempt",
    (RetrySettings, "jitter"): "random spread on the wait, so parallel steps do not retry in lockstep",
    (CuratedSpec, "calendar"): "generate `dim_calendar` for this date range",
    (CuratedSpec, "dimensions"): "dimensions by name; `customer` becomes `dim_customer` from `dim_customer.sql`",
    (CuratedSpec, "facts"): "facts by name; `sales` becomes `fact_sales` from `fact_sales.sql`",
    (CuratedSpec, "bridges"): "bridges by name (same settings as facts); `bridge_<name>.sql`",
    (CalendarSpec, "start"): "first day; fact dates before it fail the fact load",
    (CalendarSpec, "end"): "last day; fact dates after it fail the fact load",
    (CalendarSpec, "description"): "shown in the UI",
    (CalendarSpec, "retry"): "overrides the default retry policy",
    (CalendarSpec, "timeout_seconds"): "overrides the default step timeout",
    (DimensionSpec, "description"): "shown in the UI",
    (DimensionSpec, "write_pattern"): "`scd1`: one row per key, updated in place; `scd2`: a new version (and a new id) when an attribute changes",
    (DimensionSpec, "retry"): "overrides the default retry policy",
    (DimensionSpec, "timeout_seconds"): "overrides the default step timeout",
    (FactSpec, "description"): "shown in the UI",
    (FactSpec, "write_pattern"): "`overwrite` replaces the table; `append` adds the result; `merge` upserts by `primary_key`; `incremental` replaces the partition's day (`date_column`); `replace` replaces the range of `range_column` the result covers",
    (FactSpec, "retry"): "overrides the default retry policy",
    (FactSpec, "timeout_seconds"): "overrides the default step timeout",
}


def connection_models() -> list[type[BaseModel]]:
    """Every connection type the ``connection:`` of a source accepts."""
    union = typing.get_args(Connection)[0]
    return list(typing.get_args(union))


def sections() -> dict[str, list[type[BaseModel]]]:
    """Generated block name -> the models whose keys it lists."""
    return {
        "project": [ProjectSettings, PartitionSettings, SchedulesSettings, ScheduleSettings, ChecksSettings],
        "sources": [SourceSystem, *connection_models(), SourceObject],
        "base": [BaseFile, BaseTable, QualityRule, DeleteCondition, RetrySettings],
        "curated": [CuratedSpec, CalendarSpec, DimensionSpec, FactSpec],
    }


def _type_name(annotation: object) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "`") for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, tuple, set):
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map {_type_name(key)} → {_type_name(value)}"
    if isinstance(annotation, type):
        return {"str": "text", "int": "integer", "float": "number", "bool": "boolean", "Any": "any"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation).replace("typing.", "")


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ({}, []):
        return "empty"
    if value == "":
        return '`""`'
    return f"`{value}`"


def render_model(model: type[BaseModel]) -> str:
    lines = [f"**{model.__name__}**", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in _IMPLIED.get(model, set()):
            continue
        key = field.alias or name
        meaning = (field.description or _MEANING.get((model, name), "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def render_block(name: str) -> str:
    return "\n".join(render_model(model) for model in sections()[name])


def refresh(text: str) -> str:
    """``text`` with every generated block replaced by its current rendering."""
    return _BLOCK.sub(lambda m: m.group(1) + render_block(m.group("name")) + m.group(4), text)


def main() -> int:
    path = repository_root() / REFERENCE
    text = path.read_text(encoding="utf-8")
    updated = refresh(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        print(f"{path}: key tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
