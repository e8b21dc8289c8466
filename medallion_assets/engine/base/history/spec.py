"""What the history engine knows of a table, the names it shares, and the outcomes of a plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import timestamp_literal

OPEN_END = datetime(9999, 12, 31)
OPEN_END_SQL = timestamp_literal(OPEN_END)
KINDS = ("version", "sighting", "mark", "event", "extract")
STATE_COLUMNS = ("_kind", "_m", "_t", "_hash", "_file", "_load_type", "_gen")
PRESENCE = ("full", "keys")  # the load types that show every key of the source
MARK_COLUMNS = ("_t", "_load_type", "_m", "_hash")  # what the steps read of a stored mark


@dataclass(frozen=True)
class HistorySpec:
    """What the fold needs to know about a table."""

    keys: tuple[str, ...]
    columns: tuple[str, ...]  # data columns in table order, keys included
    modify_date_column: str | None = None
    history_columns: tuple[str, ...] | None = None  # scd2 subset; None = every attribute

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.keys)

    @property
    def tracked(self) -> tuple[str, ...]:
        if self.history_columns is not None:
            return tuple(c for c in self.history_columns if c in self.columns)
        return tuple(c for c in self.attributes if c != self.modify_date_column)


@dataclass
class HistoryPlan:
    """The outcome of adding a batch: observations to store, and the affected keys' history."""

    new_state: pa.Table  # rows to append to the observation table
    history: pa.Table  # every version of every affected key (data columns + lh_source_file, lh_is_deleted, lh_valid_from/to, lh_is_current)
    affected: pa.Table  # the affected keys
    batch_keys: int  # distinct keys carried by the batch's data rows


@dataclass(frozen=True)
class StagedPlan:
    """The same outcome kept in DuckDB: the names of temp tables on the connection the plan ran on
    (they spill to disk past the memory budget), so the loader streams them into Delta."""

    new_state: str
    history: str
    affected: str
    batch_keys: int


def _keys(spec: HistorySpec, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + q(k) for k in spec.keys)


def _on(spec: HistorySpec, left: str, right: str, extra: Sequence[str] = ()) -> str:
    parts = [f"{left}.{q(k)} = {right}.{q(k)}" for k in spec.keys]
    parts += [f"{left}.{c} = {right}.{c}" for c in extra]
    return " AND ".join(parts)


def state_schema(data_schema: pa.Schema) -> pa.Schema:
    fields = list(data_schema) + [
        pa.field("_kind", pa.string()),
        pa.field("_m", pa.timestamp("us")),
        pa.field("_t", pa.timestamp("us")),
        pa.field("_hash", pa.int64()),
        pa.field("_file", pa.string()),
        pa.field("_load_type", pa.string()),
        pa.field("_gen", pa.int64()),
    ]
    return pa.schema(fields)


def empty_state(data_schema: pa.Schema) -> pa.Table:
    return state_schema(data_schema).empty_table()


def _union(names: Sequence[str], empty: str) -> str:
    return " UNION ALL ".join(f"SELECT * FROM {n}" for n in names) if names else empty


def _refuse_old_state(columns: set[str]) -> None:
    if "_gen" not in columns:
        from medallion_assets.engine.base.schema import BaseLoadError

        raise BaseLoadError(
            "the hidden state table was written by an older version of medallion-assets (one row per sighting); "
            "rebuild it once with recreate: true on the table"
        )
