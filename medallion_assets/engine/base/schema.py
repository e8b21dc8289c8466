"""Column names and types: snake_case normalisation and the schema-evolution rules of Base.

A new source column is added to the table; a vanished column stays (null for new rows); a type
change is accepted only when every old value fits the new type's reading of it (widening), or when
the source is a text format whose types are inferred (then the value is cast to the table's type
and a value that does not fit is an error naming the file and column).
"""

from __future__ import annotations

import pyarrow as pa

from medallion_assets.engine.sqltext import InvalidName, to_snake_case
from medallion_assets.engine.storage.delta_copy import plain_type


class BaseLoadError(ValueError):
    """A landing file or batch cannot be loaded; the message names the table, file and column."""


class SchemaError(BaseLoadError):
    """An incompatible type change; nothing was written."""


def normalise_names(table: pa.Table, where: str) -> pa.Table:
    try:
        new_names = [to_snake_case(name) for name in table.column_names]
    except InvalidName as exc:
        raise BaseLoadError(f"{where}: {exc}") from None
    seen: dict[str, str] = {}
    for old, new in zip(table.column_names, new_names, strict=True):
        if new in seen:
            raise BaseLoadError(f"{where}: columns {seen[new]!r} and {old!r} both become {new!r} in snake_case")
        seen[new] = old
    return table.rename_columns(new_names)


def plain_types(table: pa.Table) -> pa.Table:
    """Normalise storage types; tz-aware timestamps become naive UTC."""
    columns = []
    for column, field in zip(table.columns, table.schema, strict=True):
        target = plain_type(field.type)
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            # Arrow stores instants in UTC; dropping the zone keeps the UTC wall time.
            column = column.cast(pa.timestamp(field.type.unit))
        if pa.types.is_dictionary(field.type):
            column = column.cast(field.type.value_type)
        if column.type != target:
            column = column.cast(target)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def widens(source: pa.DataType, target: pa.DataType) -> bool:
    """True when every value of ``source`` is representable in ``target``."""
    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_integer(source):
        if pa.types.is_integer(target):
            return target.bit_width >= source.bit_width and (
                pa.types.is_signed_integer(target) or pa.types.is_unsigned_integer(source)
            )
        if pa.types.is_floating(target):
            return True
        if pa.types.is_decimal(target):
            return target.precision - target.scale >= (
                3 if source.bit_width <= 8 else 5 if source.bit_width <= 16 else 10 if source.bit_width <= 32 else 19
            )
        return False
    if pa.types.is_floating(source):
        return pa.types.is_floating(target) and target.bit_width >= source.bit_width
    if pa.types.is_decimal(source):
        if pa.types.is_decimal(target):
            return target.scale >= source.scale and target.precision - target.scale >= source.precision - source.scale
        return pa.types.is_floating(target) and target.bit_width == 64
    if pa.types.is_timestamp(source):
        return pa.types.is_timestamp(target)
    if pa.types.is_date(source):
        return pa.types.is_date(target)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        return pa.types.is_string(target) or pa.types.is_large_string(target)
    return False


def _castable_from_text(source: pa.DataType, target: pa.DataType) -> bool:
    # Text formats infer types per file: an all-empty column may come out as text, a price as a
    # double. Casting to the table's type is then the reader's job, checked value by value.
    textual = pa.types.is_string(source) or pa.types.is_large_string(source)
    numeric = pa.types.is_integer(source) or pa.types.is_floating(source) or pa.types.is_decimal(source)
    if textual:
        return True
    if numeric and (pa.types.is_decimal(target) or pa.types.is_floating(target) or pa.types.is_integer(target)):
        return True
    return pa.types.is_date(source) and pa.types.is_timestamp(target)


def align(table: pa.Table, target: pa.Schema | None, *, text_format: bool, where: str) -> pa.Table:
    """Cast ``table`` onto ``target`` (the stored schema): shared columns take the stored type,
    stored columns missing from the batch are added as nulls, new columns are kept at the end."""
    if target is None:
        return table
    columns: list[pa.ChunkedArray] = []
    names: list[str] = []
    for field in target:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                if not (
                    widens(column.type, field.type) or (text_format and _castable_from_text(column.type, field.type))
                ):
                    raise SchemaError(
                        f"{where}: column {field.name!r} changed type from {field.type} (stored) to {column.type}; "
                        "this is not a widening change. Fix the source or set recreate: true to rebuild the table."
                    )
                try:
                    column = column.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(
                        f"{where}: column {field.name!r}: a value does not fit the stored type {field.type}: {exc}"
                    ) from None
        else:
            column = pa.nulls(table.num_rows, field.type)
        columns.append(column)
        names.append(field.name)
    for name in table.column_names:
        if name not in names:
            columns.append(table.column(name))
            names.append(name)
    return pa.table(columns, names=names)


def unify(tables: list[pa.Table], where: str) -> pa.Table:
    """Concatenate batches whose inferred types may differ (one file's column all empty, say)."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"{where}: the landing files of this batch disagree on column types: {exc}") from None
