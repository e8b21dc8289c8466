"""Read-only DuckDB SQL over Delta tables.

Curated SQL is user code kept in version control, so it is treated as untrusted twice over:
statically, only one SELECT whose tables are ``base.<table>`` / ``curated.<table>`` (or its own
CTEs) is accepted; at run time the connection sees only the Arrow data registered for those
tables, with file-system access disabled (but for reading the lake) and the configuration locked
before the query runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.memory import new_database
from medallion_assets.engine.sqltext import is_snake_case, qualified, quote_identifier
from medallion_assets.engine.sqltree import SqlRejected, parse_single_select, walk
from medallion_assets.engine.storage.delta_copy import WRITER_PART
from medallion_assets.engine.storage.lake import LakePath, LakeRoot, as_path, open_delta
from medallion_assets.engine.storage.scan import register_delta

SCHEMAS = ("base", "curated")
# Table functions that generate rows and touch neither files nor settings.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})


@dataclass(frozen=True, order=True)
class TableRef:
    """A table the SQL reads, e.g. ``base.erp_customer``."""

    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


def check_identifier(name: str, what: str = "column") -> str:
    """Identifiers pasted into generated SQL must be lower snake_case; they are quoted as well."""
    if not is_snake_case(name):
        raise CuratedError(f"{what} {name!r} is not a lower snake_case identifier")
    return name


def q(name: str) -> str:
    """Double-quote a validated identifier."""
    return quote_identifier(check_identifier(name))


def parse_select(sql: str, *, source: str) -> tuple[TableRef, ...]:
    """Validate that ``sql`` is one read-only SELECT and return the tables it reads.

    ``source`` (usually the SQL file) names the culprit in every error.
    """
    if not sql or not sql.strip():
        raise CuratedError(f"{source}: SQL is empty")
    try:
        statement = parse_single_select(sql)
    except SqlRejected as exc:
        raise CuratedError(f"{source}: SQL rejected: {exc}") from None
    ctes: set[str] = set()
    _collect_ctes(statement, ctes)
    refs: set[TableRef] = set()
    _collect_refs(statement, ctes, refs, source)
    return tuple(sorted(refs))


def output_columns(sql: str) -> list[str] | None:
    """The column names a SELECT returns, read from its parse tree without running it.

    ``None`` when they cannot be known without data (``*``, or an unnamed expression); the
    run-time check then covers them.
    """
    try:
        node = parse_single_select(sql).get("node") or {}
    except SqlRejected:
        return None
    while node.get("type") == "SET_OPERATION_NODE":  # UNION etc.: the first branch names the columns
        node = node.get("left") or (node.get("children") or [{}])[0] or {}
    if node.get("type") != "SELECT_NODE":
        return None
    names: list[str] = []
    for expression in node.get("select_list") or []:
        alias = expression.get("alias")
        if alias:
            names.append(str(alias).lower())
        elif expression.get("class") == "COLUMN_REF" and expression.get("column_names"):
            names.append(str(expression["column_names"][-1]).lower())
        else:
            return None
    return names


def _collect_ctes(node: Any, ctes: set[str]) -> None:
    for item in walk(node):
        cte_map = item.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []):
                ctes.add(str(entry.get("key", "")).lower())


def _collect_refs(node: Any, ctes: set[str], refs: set[TableRef], source: str) -> None:
    for item in walk(node):
        kind = item.get("type")
        if kind == "BASE_TABLE":
            schema = str(item.get("schema_name", "")).lower()
            table = str(item.get("table_name", "")).lower()
            if item.get("catalog_name"):
                raise CuratedError(f"{source}: table {item['catalog_name']}.{schema}.{table}: other catalogs are not allowed")
            if not schema:
                if table in ctes:
                    continue
                raise CuratedError(
                    f"{source}: table {table!r} must be qualified as base.{table} or curated.{table}"
                )
            if schema not in SCHEMAS:
                raise CuratedError(f"{source}: table {schema}.{table}: only schemas base and curated can be read")
            if not is_snake_case(table):
                raise CuratedError(f"{source}: table {schema}.{table}: table names are lower snake_case")
            refs.add(TableRef(schema, table))
        elif kind == "TABLE_FUNCTION":
            function = item.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
                raise CuratedError(
                    f"{source}: table function {name!r} is not allowed: curated SQL reads only base and curated tables"
                )


def delta_path(data_dir: LakeRoot, ref: TableRef) -> Path:
    return as_path(data_dir) / ref.schema / ref.table


def is_delta_table(path: Path) -> bool:
    return (as_path(path) / "_delta_log").is_dir()


@contextlib.contextmanager
def sandbox(
    data_dir: LakeRoot,
    refs: tuple[TableRef, ...] | list[TableRef],
    *,
    source: str,
    arrow: Mapping[TableRef, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    also_reads: Sequence[Path | LakePath] = (),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB database where ``base.x`` / ``curated.x`` are views of the tables.

    Tables come from ``arrow`` when given there (an Arrow table or dataset already in hand),
    otherwise from the Delta table at ``<data_dir>/<schema>/<table>``, read by DuckDB's own
    Parquet reader on local disk (a lazy Arrow dataset elsewhere); a missing one is an error
    naming ``source``. File access is then switched off but for reading those tables' folders and
    ``also_reads`` (the tables the load itself merges into or maps keys against, which it adds as
    views later), and the configuration locked.
    """

    arrow = dict(arrow or {})
    con = new_database(part=1 - WRITER_PART)
    try:
        con.execute("SET python_enable_replacements = false")
        for schema in SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for ref in refs:
            data = arrow.get(ref)
            handle = f"__table_{ref.schema}_{ref.table}"
            if data is not None:
                con.register(handle, data)
            else:
                path = delta_path(data_dir, ref)
                if not is_delta_table(path):
                    raise CuratedError(f"{source}: reads {ref}, which does not exist yet (no Delta table at {path})")
                register_delta(con, handle, open_delta(path))
            con.execute(f"CREATE VIEW {qualified(ref.schema, ref.table)} AS SELECT * FROM {quote_identifier(handle)}")
        for name, value in (variables or {}).items():
            check_identifier(name, "variable")
            con.execute(f"SET VARIABLE {name} = ?", [value])
        readable = [as_path(p) for p in (*(delta_path(data_dir, ref) for ref in refs if ref not in arrow), *also_reads)]
        folders = sorted({str(p.resolve()) + "/" for p in readable if isinstance(p, Path)})
        if folders:
            con.execute("SET allowed_directories = ?", [folders])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        _close(con)


def _close(con: duckdb.DuckDBPyConnection) -> None:
    """Close the database, first stopping a stream of its results that a failed writer (delta-rs
    reads on threads of its own) may still be pulling; the load's own error stays the one raised."""
    for _ in range(100):
        try:
            con.close()
            return
        except duckdb.Error:  # "connection is busy with another call"
            con.interrupt()
            time.sleep(0.02)


def select_into(con: duckdb.DuckDBPyConnection, sql: str, table: str, *, source: str) -> None:
    """Run a curated SELECT into the temporary table ``table`` of a :func:`sandbox` connection:
    DuckDB holds the rows and spills them past its memory limit, none of it passes through Python."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_identifier(table)} AS {sql}")
    except duckdb.Error as exc:
        raise CuratedError(f"{source}: SQL failed: {exc}") from exc


def column_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Each column of a relation with its DuckDB type, in order."""
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def run_select(
    sql: str,
    data_dir: LakeRoot,
    *,
    source: str,
    arrow: Mapping[TableRef, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Validate and run a curated SELECT; the result as an Arrow table (for small results: the
    loads keep theirs in DuckDB with :func:`select_into`)."""
    refs = parse_select(sql, source=source)
    with sandbox(data_dir, refs, source=source, arrow=arrow, variables=variables) as con:
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise CuratedError(f"{source}: SQL failed: {exc}") from exc
