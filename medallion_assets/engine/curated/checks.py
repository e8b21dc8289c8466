"""Data checks on curated tables (surrogate keys, unknown member, SCD2 currency, fact references).

Plain functions returning :class:`CheckOutcome`; the Dagster layer turns them into asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from medallion_assets.engine.curated.keys import resolve_key_columns
from medallion_assets.engine.curated.model import CalendarMeta, DimensionMeta, FactMeta
from medallion_assets.engine.curated.sql import is_delta_table, q
from medallion_assets.engine.curated.tables import UNKNOWN_ID, curated_path
from medallion_assets.engine.memory import new_database
from medallion_assets.engine.storage.lake import LakeRoot, open_delta
from medallion_assets.engine.storage.scan import register_delta


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchall()[0][0]


def check_dimension(meta: DimensionMeta, data_dir: LakeRoot) -> list[CheckOutcome]:
    """Ids unique, exactly one live unknown member, and (SCD2) one current version per key."""
    path = curated_path(data_dir, meta.table)
    if not is_delta_table(path):
        missing = CheckOutcome("table_exists", False, f"{meta.table} has not been loaded")
        return [missing]
    con = new_database()
    try:
        register_delta(con, "d", open_delta(path))
        idc, bk = q(meta.id_column), q(meta.business_key)
        dup_ids = _scalar(con, f"SELECT count(*) FROM (SELECT {idc} FROM d GROUP BY 1 HAVING count(*) > 1)")
        unknown = _scalar(con, f"SELECT count(*) FROM d WHERE {idc} = {UNKNOWN_ID} AND NOT lh_is_deleted")
        outcomes = [
            CheckOutcome("surrogate_key_unique", dup_ids == 0, f"{dup_ids} duplicated {meta.id_column} value(s)",
                         {"duplicated_ids": int(dup_ids)}),
            CheckOutcome("unknown_member_present", unknown == 1, f"{unknown} live unknown member row(s) (want 1)",
                         {"unknown_rows": int(unknown)}),
        ]
        if meta.is_scd2:
            bad = _scalar(
                con,
                f"SELECT count(*) FROM (SELECT {bk} FROM d GROUP BY 1 HAVING count_if(lh_is_current) <> 1)",
            )
            outcomes.append(
                CheckOutcome("one_current_version", bad == 0, f"{bad} business key(s) without exactly one current version",
                             {"bad_keys": int(bad)})
            )
    finally:
        con.close()
    return outcomes


def _mapped_columns(meta: FactMeta, table: DeltaTable) -> list:
    """The fact's columns that came from key mapping (``<dim>[_<role>]_id`` and calendar keys)."""
    names = pa.schema(table.schema().to_arrow()).names
    key_like = [c[: -len("_id")] + "_key" for c in names if c.endswith("_id")]
    key_like += [c for c in names if c.startswith("calendar") and c.endswith("_key")]
    mappings, _ = resolve_key_columns(
        key_like, meta.dimensions, degenerate=meta.spec.degenerate_keys, source=meta.table, strict=False
    )
    return mappings


def check_unknown_share(meta: FactMeta, data_dir: LakeRoot) -> CheckOutcome:
    """Referential integrity as a rate: the share of rows mapped to the unknown member (-1) per
    key column stays at or below ``max_unknown_share`` (or the column's override)."""
    name = "unknown_member_share"
    path = curated_path(data_dir, meta.table)
    if not is_delta_table(path):
        return CheckOutcome(name, False, f"{meta.table} has not been loaded")
    table = open_delta(path)
    con = new_database()
    metadata: dict[str, Any] = {}
    too_high: dict[str, float] = {}
    try:
        register_delta(con, "f", table)
        total = int(_scalar(con, "SELECT count(*) FROM f"))
        for mapping in _mapped_columns(meta, table):
            unknown = int(_scalar(con, f"SELECT count(*) FROM f WHERE {q(mapping.target)} = {UNKNOWN_ID}"))
            share = unknown / total if total else 0.0
            limit = meta.spec.unknown_share_overrides.get(mapping.target, meta.spec.max_unknown_share)
            metadata[f"unknown_share_{mapping.target}"] = round(share, 6)
            if share > limit:
                too_high[mapping.target] = round(share, 4)
    finally:
        con.close()
    description = "unknown-member shares within their limits" if not too_high else f"share of -1 above the limit: {too_high}"
    return CheckOutcome(name, not too_high, description, metadata)


def check_fact_references(meta: FactMeta, data_dir: LakeRoot) -> CheckOutcome:
    """Every surrogate id (and calendar key) of the fact exists in its dimension."""
    name = "dimension_ids_exist"
    path = curated_path(data_dir, meta.table)
    if not is_delta_table(path):
        return CheckOutcome(name, False, f"{meta.table} has not been loaded")
    table = open_delta(path)
    mappings = _mapped_columns(meta, table)
    orphans: dict[str, int] = {}
    con = new_database()
    try:
        register_delta(con, "f", table)
        for mapping in mappings:
            dim = meta.dimensions[mapping.dimension]
            dim_path = curated_path(data_dir, dim.table)
            if not is_delta_table(dim_path):
                orphans[mapping.target] = -1
                continue
            register_delta(con, f"d_{mapping.dimension}", open_delta(dim_path))
            key = "calendar_key" if isinstance(dim, CalendarMeta) else q(dim.id_column)
            orphans[mapping.target] = int(
                _scalar(
                    con,
                    f"SELECT count(*) FROM f WHERE {q(mapping.target)} IS NULL "
                    f"OR {q(mapping.target)} NOT IN (SELECT {key} FROM d_{mapping.dimension})",
                )
            )
    finally:
        con.close()
    bad = {k: v for k, v in orphans.items() if v}
    description = "all ids found in their dimensions" if not bad else f"orphan rows per column: {bad}"
    return CheckOutcome(name, not bad, description, {f"orphans_{k}": v for k, v in orphans.items()})


