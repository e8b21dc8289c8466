"""Fact key columns by naming convention: ``<dimension>[_<role>]_key`` names the dimension it
refers to (the longest matching dimension name wins). Used when the model is validated (from
the SQL text, before any run), when a fact is loaded and by the fact checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medallion_assets.engine.curated.errors import CuratedError

CALENDAR = "calendar"  # the calendar dimension's name: its keys keep their name (smart keys)


@dataclass(frozen=True)
class KeyMapping:
    """One fact key column and the dimension (and role) it refers to."""

    column: str  # e.g. customer_key, calendar_ship_key
    dimension: str  # e.g. customer, calendar
    role: str | None
    target: str  # e.g. customer_id; calendar keys keep their name


def resolve_key_columns(
    columns: list[str],
    dimensions: Mapping[str, Any],
    *,
    degenerate: list[str] | tuple[str, ...] = (),
    source: str = "fact",
    strict: bool = True,
) -> tuple[list[KeyMapping], list[str]]:
    """Find the dimension of every ``*_key`` column by the longest matching dimension name.

    A ``*_key`` column with no dimension is an error when ``strict`` (mapping on), otherwise a
    warning. Returns the mappings and the warnings.
    """
    mappings: list[KeyMapping] = []
    warnings: list[str] = []
    for column in columns:
        if not column.endswith("_key") or column in degenerate:
            continue
        stem = column[: -len("_key")]
        candidates = [d for d in dimensions if stem == d or stem.startswith(d + "_")]
        if not candidates:
            message = (
                f"{source}: column {column!r} looks like a dimension key but no dimension "
                f"'{stem}' (dim_{stem}) exists in the curated model; rename it or list it in degenerate_keys"
            )
            if strict:
                raise CuratedError(message)
            warnings.append(message)
            continue
        dimension = max(candidates, key=len)
        role = stem[len(dimension) + 1 :] or None
        if dimension == CALENDAR:
            target = column
        else:
            target = f"{dimension}_{role}_id" if role else f"{dimension}_id"
            if target in columns:
                raise CuratedError(f"{source}: column {column!r} maps to {target!r}, which the SQL already returns")
        mappings.append(KeyMapping(column=column, dimension=dimension, role=role, target=target))
    return mappings, warnings
