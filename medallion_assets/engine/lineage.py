"""Column lineage: where every column of a base or curated table comes from.

A base column comes from the landing column of the same name, or the one its ``translations``
rename; ``lh_`` columns are the framework's own and come from no column. A curated column comes
from the base (or curated) columns its SQL computes it from, read off sqlglot's parse tree of
the SQL with the stored schemas of the tables it reads (so ``SELECT *``, aliases, CTEs, joins,
expressions and ``CASE`` resolve). Keys the framework adds point at what they resolve against:
a dimension's surrogate key at nothing (the framework numbers it), a fact's ``<dimension>_id`` at
the dimension's id and at the columns of the ``<dimension>_key`` it was mapped from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.curated.keys import resolve_key_columns
from medallion_assets.engine.curated.model import DimensionMeta
from medallion_assets.engine.sqltext import to_snake_case

SYSTEM_PREFIX = "lh_"


@dataclass(frozen=True, order=True)
class ColumnRef:
    """A column of a table of the lake: ``layer`` (landing, base, curated), ``table``, ``column``."""

    layer: str
    table: str
    column: str


Lineage = dict[str, tuple[ColumnRef, ...]]


class LineageError(ValueError):
    """The SQL's columns could not be traced (syntax sqlglot does not follow)."""


def base_lineage(table: BaseTable, columns: Sequence[str]) -> Lineage:
    """Each column of the base table and the landing column(s) it is loaded from."""
    renamed_from = {to_snake_case(new): old for old, new in table.translations.items()}
    out: Lineage = {}
    for column in columns:
        if column.startswith(SYSTEM_PREFIX):
            out[column] = ()
            continue
        source = renamed_from.get(column, column)
        out[column] = tuple(ColumnRef("landing", ref.asset_name, source) for ref in table.landing)
    return out


def sql_lineage(sql: str, schemas: Mapping[tuple[str, str], Sequence[str]] | None) -> Lineage:
    """Each output column of a SELECT and the columns of the tables (``(schema, table)`` ->
    column names) it is computed from. With ``schemas`` ``None`` (before any table is stored)
    only the SQL text is read: a column that is neither qualified nor from the only table read,
    or a ``*``, cannot be placed. Raises :class:`LineageError` when the SQL cannot be traced."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify

    nested: dict[str, dict[str, dict[str, str]]] | None = None
    if schemas is not None:
        nested = {}
        for (schema, table), names in schemas.items():
            nested.setdefault(schema, {})[table] = {name: "VARCHAR" for name in names}  # types do not matter here
    try:
        tree = qualify(
            sqlglot.parse_one(sql, dialect="duckdb"), schema=nested, dialect="duckdb", validate_qualify_columns=nested is not None
        )
        if nested is None:
            _refuse_what_needs_schemas(tree)
        out: Lineage = {}
        for column in tree.named_selects:
            node = lineage(column, tree, schema=nested, dialect="duckdb")
            found = {
                ColumnRef(leaf.source.db, leaf.source.name, leaf.name.rsplit(".", 1)[-1].strip('"'))
                for leaf in node.walk()
                if not leaf.downstream and isinstance(leaf.source, exp.Table) and leaf.source.db
            }
            out[column] = tuple(sorted(found))
        return out
    except (SqlglotError, KeyError, ValueError) as exc:
        raise LineageError(f"cannot trace the columns of the SQL: {exc}") from None


def _refuse_what_needs_schemas(tree) -> None:
    """Without schemas sqlglot leaves a ``*`` unexpanded and an unqualified column of a join
    unplaced (it would trace to nothing): refused, rather than shown as a column with no source."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    if any(_is_star(item) for select in tree.find_all(exp.Select) for item in select.expressions):
        raise LineageError("SELECT * needs the stored schemas")
    unplaced = sorted(
        {column.name for scope in traverse_scope(tree) if len(scope.sources) > 1 for column in scope.columns if not column.table}
    )
    if unplaced:
        raise LineageError(f"column(s) {', '.join(unplaced)} need the stored schemas to be placed")


def _is_star(item) -> bool:
    """``*`` or ``t.*`` as a projection (``count(*)`` is not one)."""
    from sqlglot import exp

    return isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star))


def dimension_lineage(sql_columns: Lineage, columns: Sequence[str], *, id_column: str) -> Lineage:
    """A dimension's stored columns: the SQL's, the surrogate key and ``lh_`` columns (framework)."""
    return {c: () if c == id_column or c.startswith(SYSTEM_PREFIX) else sql_columns.get(c, ()) for c in columns}


def fact_lineage(sql_columns: Lineage, columns: Sequence[str], *, mapped: Mapping[str, tuple[str, str]]) -> Lineage:
    """A fact's stored columns; ``mapped`` gives each surrogate key column the fact got (``customer_id``)
    as (its ``_key`` column in the SQL, the dimension table whose id it resolves against)."""
    out: Lineage = {}
    for column in columns:
        if column in mapped:
            key, dimension = mapped[column]
            resolved = ColumnRef("curated", dimension, "calendar_key" if dimension == "dim_calendar" else _id_of(dimension))
            out[column] = tuple(sorted({resolved, *sql_columns.get(key, ())}))
        elif column.startswith(SYSTEM_PREFIX):
            out[column] = ()
        else:
            out[column] = sql_columns.get(column, ())
    return out


def _id_of(dimension_table: str) -> str:
    return f"{dimension_table.removeprefix('dim_')}_id"


def stored_columns(root, refs) -> dict[tuple[str, str], list[str]]:
    """The column names of each table ``refs`` name (``TableRef``: schema, table) as stored now;
    a table not written yet is left out."""
    from medallion_assets.engine.storage.lake import as_path, is_delta, open_delta

    out: dict[tuple[str, str], list[str]] = {}
    for ref in refs:
        path = as_path(root) / ref.schema / ref.table
        if is_delta(path):
            out[(ref.schema, ref.table)] = [f.name for f in open_delta(path).schema().fields]
    return out


def curated_lineage(meta, root, columns: Sequence[str]) -> Lineage:
    """The lineage of a dimension, fact or bridge (``DimensionMeta`` / ``FactMeta``) whose stored
    columns are ``columns``, against the tables its SQL reads as they are stored in ``root``."""
    return _curated_columns(meta, sql_lineage(meta.sql, stored_columns(root, meta.reads)), columns)


def declared_lineage(meta) -> Lineage | None:
    """The lineage a dimension, fact or bridge will have, read from its SQL text and the model
    alone (nothing stored is opened, so the code location shows it before any run); ``None``
    when the SQL needs the stored schemas to be traced (``SELECT *``, unqualified columns of a
    join), which the first materialization's lineage then gives."""
    try:
        from_sql = sql_lineage(meta.sql, None)
    except LineageError:
        return None
    columns = list(from_sql)
    if isinstance(meta, DimensionMeta):
        columns = [meta.id_column, *columns]
    elif meta.spec.map_keys:
        mappings, _ = resolve_key_columns(columns, meta.dimensions, degenerate=meta.spec.degenerate_keys, source=meta.table, strict=False)
        targets = {m.column: m.target for m in mappings}
        columns = [targets.get(c, c) for c in columns]
    return _curated_columns(meta, from_sql, columns)


def _curated_columns(meta, from_sql: Lineage, columns: Sequence[str]) -> Lineage:
    if isinstance(meta, DimensionMeta):
        return dimension_lineage(from_sql, columns, id_column=meta.id_column)
    mapped: dict[str, tuple[str, str]] = {}
    if meta.spec.map_keys:
        mappings, _ = resolve_key_columns(
            list(from_sql), meta.dimensions, degenerate=meta.spec.degenerate_keys, source=meta.table, strict=False
        )
        mapped = {m.target: (m.column, f"dim_{m.dimension}") for m in mappings}
    return fact_lineage(from_sql, columns, mapped=mapped)
