"""Starter metadata for a database source: tables, primary keys and watermark candidates.

Onboarding a source with hundreds of tables should not mean typing hundreds of entries.
:func:`discover_source` reads the database's catalog through SQLAlchemy's inspector;
:func:`starter_metadata` turns it into source and base YAML that the user edits and commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from medallion_assets.engine.landing.database import SqlSource, UnsupportedColumnType, arrow_type_of
from medallion_assets.engine.sqltext import is_snake_case

# Timestamps named like the row's last change make good watermarks.
_WATERMARK_NAME = re.compile(r"modif|updat|chang|last_?(mod|edit|write)|edited|_ts$|timestamp", re.IGNORECASE)


@dataclass
class DiscoveredTable:
    name: str
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, landing type)
    primary_key: list[str] = field(default_factory=list)
    watermark_candidates: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    @property
    def extract_mode(self) -> str:
        return "incremental" if self.primary_key and self.watermark_candidates else "full"


def discover_source(database: SqlSource, *, schema: str | None = None) -> list[DiscoveredTable]:
    """Every table of the database (or of ``schema``) with its key and watermark candidates."""
    inspector = database.inspector()
    found = []
    for name in sorted(inspector.get_table_names(schema=schema)):
        table = DiscoveredTable(name=name)
        table.primary_key = list(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or [])
        for column in inspector.get_columns(name, schema=schema):
            try:
                kind = arrow_type_of(column["type"], f"table {name!r}", column["name"])
            except UnsupportedColumnType:
                table.unsupported.append(column["name"])
                continue
            table.columns.append((column["name"], str(kind)))
            if str(kind).startswith("timestamp") and _WATERMARK_NAME.search(column["name"]):
                table.watermark_candidates.append(column["name"])
        found.append(table)
    return found


def _object_name(table: str) -> str:
    name = re.sub(r"[^0-9a-z_]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", table).lower()).strip("_")
    return name if is_snake_case(name) else f"t_{name}"


def starter_metadata(source: str, url_env: str, tables: list[DiscoveredTable]) -> tuple[str, str]:
    """(source YAML, base YAML) for ``tables``: a starting point to edit, not a final answer."""
    src = [
        f"# Discovered by `medallion sources discover {source}`; edit, then save as metadata/sources/{source}.yaml",
        f"source: {source}",
        "connection:",
        "  type: sql_database",
        f"  url_env: {url_env}",
        "  clock_query: select current_timestamp",
        "objects:",
    ]
    base = [
        f"# Discovered by `medallion sources discover {source}`; edit, then save as metadata/base/{source}.yaml",
        f"source: {source}",
        "tables:",
    ]
    for table in tables:
        name = _object_name(table.name)
        src.append(f"  {name}:")
        if name != table.name:
            src.append(f"    table: {table.name}")
        src.append(f"    extract_mode: {table.extract_mode}")
        if table.extract_mode == "incremental":
            src += [
                f"    watermark_column: {table.watermark_candidates[0]}",
                "    watermark_lookback_hours: 48",
                "    full_every_days: 7",
                "    keys_extract: true",
            ]
            if len(table.watermark_candidates) > 1:
                src.append(f"    # other watermark candidates: {', '.join(table.watermark_candidates[1:])}")
        if table.primary_key:
            src.append(f"    primary_key: [{', '.join(table.primary_key)}]")
        else:
            src.append("    # no primary key constraint: full extracts only; name the key to merge in base")
        if table.unsupported:
            src.append(f"    # columns that cannot be landed, left out: {', '.join(table.unsupported)}")
            src.append(f"    columns: [{', '.join(c for c, _ in table.columns)}]")
        src.append("    format: parquet")
        base.append(f"  {name}:")
        if table.primary_key:
            base += ["    read_behaviour: auto", "    write_behaviour: scd1", f"    business_keys: [{', '.join(table.primary_key)}]"]
            if table.watermark_candidates:
                base.append(f"    modify_date_column: {table.watermark_candidates[0]}")
        else:
            base += ["    read_behaviour: full", "    write_behaviour: overwrite"]
    return "\n".join(src) + "\n", "\n".join(base) + "\n"
