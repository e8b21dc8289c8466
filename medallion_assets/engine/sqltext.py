"""SQL text in one place: quoted identifiers, literals, and the lower-snake-case name rule.

Prefer bound parameters (``?`` / ``$name``) wherever DuckDB or deltalake take them. Text is
pasted only where a statement has no parameter slot: identifiers, view definitions, ``COPY ... TO``
file names and deltalake predicates. Each helper here makes its input inert in that position:
an identifier can never close its quotes, a literal can never end its string.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from decimal import Decimal

NAME_RULE = "lower snake_case (a lower-case letter, then lower-case letters, digits and underscores)"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Word boundaries of a free-form column name: an acronym before a capitalised word (HTTPServer),
# a lower-case letter or digit before a capital (customerName), any run of other characters.
_ACRONYM_END = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_LOWER_TO_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


class InvalidName(ValueError):
    """A name that would be pasted into SQL or a path breaks the lower-snake-case rule."""


def is_snake_case(name: object) -> bool:
    """True for ``customer_id``, ``dim_customer``, ``c_2024``; false for ``Customer``, ``2x``, ``a-b``."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object, *, what: str = "name") -> str:
    """``name`` unchanged when it is lower snake_case, else :class:`InvalidName` naming ``what``."""
    if not is_snake_case(name):
        raise InvalidName(f"{what} {name!r} must be {NAME_RULE}")
    return name  # type: ignore[return-value]


def to_snake_case(name: str) -> str:
    """Turn a free-form column name into the rule: ``CustomerName``, ``Customer Name`` and
    ``customer-name`` all become ``customer_name``; a leading digit gets the prefix ``c_``.

    :class:`InvalidName` when nothing of the name is left (no letter or digit)."""
    spaced = _LOWER_TO_UPPER.sub("_", _ACRONYM_END.sub("_", name.strip()))
    words = [word for word in _SEPARATORS.split(spaced) if word]
    if not words:
        raise InvalidName(f"column name {name!r} has no letters or digits")
    text = "_".join(words).lower()
    return f"c_{text}" if text[0].isdigit() else text


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier; embedded double quotes are doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_name(name: str, *, what: str = "column") -> str:
    """A checked lower-snake-case name, quoted: for names from metadata or SQL results."""
    return quote_identifier(check_name(name, what=what))


def qualified(*parts: str) -> str:
    """``schema.table`` (or any dotted path) with every part quoted."""
    return ".".join(quote_identifier(part) for part in parts)


def string_literal(text: str) -> str:
    """``text`` as a single-quoted SQL string; embedded single quotes are doubled."""
    return "'" + text.replace("'", "''") + "'"


def path_literal(path: str | os.PathLike[str]) -> str:
    """A file path as a SQL string literal (``read_parquet(...)``, ``COPY ... TO ...``)."""
    return string_literal(os.fspath(path))


def timestamp_literal(moment: datetime) -> str:
    """A naive timestamp as ``TIMESTAMP '...'``, microseconds kept."""
    if moment.tzinfo is not None:
        raise ValueError(f"timestamp {moment!r} has a time zone; the lakehouse stores naive UTC timestamps")
    return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"


def literal(value: object) -> str:
    """A Python value as SQL text that DuckDB and deltalake (DataFusion) predicates both read.

    ``None``, booleans, integers, decimals, finite floats, dates, naive datetimes and strings;
    anything else is a ``TypeError`` rather than a guess."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} has no SQL literal")
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} has no SQL literal")
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError(f"timestamp {value!r} has a time zone; the lakehouse stores naive UTC timestamps")
        # TIMESTAMP(6): microseconds, the unit Delta stores. A plain TIMESTAMP is nanoseconds in
        # DataFusion, and deltalake refuses to compare it with a microsecond column.
        return f"CAST({string_literal(value.isoformat(sep=' '))} AS TIMESTAMP(6))"
    if isinstance(value, date):
        return f"CAST({string_literal(value.isoformat())} AS DATE)"
    if isinstance(value, str):
        return string_literal(value)
    raise TypeError(f"cannot write a {type(value).__name__} value as a SQL literal")
