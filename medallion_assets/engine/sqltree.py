"""DuckDB's own parse tree of a SQL text (``json_serialize_sql``), for checks before anything runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb


class SqlRejected(ValueError):
    """The SQL does not parse, or is not what the caller allows."""


def parse_statements(sql: str) -> list[dict[str, Any]]:
    """The statements of ``sql``; only SELECT statements serialize, anything else is rejected."""
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error"):
        message = tree.get("error_message", "unknown error")
        if tree.get("error_type") == "not implemented":
            message = "only a single read-only SELECT (or WITH ... SELECT) statement is allowed; " + message
        raise SqlRejected(message)
    return tree.get("statements", [])


def parse_single_select(sql: str) -> dict[str, Any]:
    """The one SELECT statement of ``sql``; anything else (several statements, DDL, COPY, ...) is rejected."""
    statements = parse_statements(sql)
    if len(statements) != 1:
        raise SqlRejected(f"exactly one SELECT statement is allowed, found {len(statements)}")
    return statements[0]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict node of a parse tree."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def table_functions(statement: dict[str, Any]) -> set[str]:
    """Names of the table functions (read_csv, glob, ...) a statement calls."""
    return {
        str((item.get("function") or {}).get("function_name", "")).lower()
        for item in walk(statement)
        if item.get("type") == "TABLE_FUNCTION"
    }
