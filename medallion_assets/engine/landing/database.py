"""Read SQL databases as streams of Arrow record batches, with the drivers' own type mapping.

Which library reads which database:

- PostgreSQL: ADBC (``adbc-driver-postgresql``). It reads with PostgreSQL's binary COPY
  protocol straight into Arrow, typed by the server's own type information, in batches.
- Everything else SQLAlchemy can reach (MariaDB/MySQL through PyMySQL, SQLite, and SQL Server
  or Oracle with their SQLAlchemy drivers): a server-side cursor fetched in chunks, typed by
  the column types SQLAlchemy reflects from the database.

The connection URL is a secret: it is only handed to the driver. Every message that leaves
this module goes through :func:`redact`, and driver exceptions are re-raised without their
original (``from None``) so no traceback carries the URL either.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.engine.clock import utc_now
from medallion_assets.engine.sqltext import quote_identifier

DEFAULT_CHUNK_ROWS = 65_536

# Driver messages that mean "try again later" rather than "this will never work".
_TRANSIENT = re.compile(
    r"connection refused|could not connect|can't connect|timed? ?out|timeout|server closed the connection"
    r"|connection reset|no route to host|temporarily unavailable|too many connections|the database system is starting up"
    r"|lost connection|could not translate host name|name or service not known|network is unreachable",
    re.IGNORECASE,
)


class SourceReadError(RuntimeError):
    """A source cannot be read. ``transient`` says whether trying again later may help."""

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


class UnsupportedColumnType(SourceReadError):
    def __init__(self, message: str):
        super().__init__(message, transient=False)


def redact(text: str, url: str | None) -> str:
    """``text`` without the URL, its password, or any ``user:password@`` part."""
    if url:
        text = text.replace(url, "<database url>")
        password = _password(url)
        if password:
            text = text.replace(password, "***")
    return re.sub(r"(\w+://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password we can find
        return None


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


@dataclass(frozen=True)
class SourceQuery:
    """What to read from a source database: a table or a query, optional columns, an optional watermark filter."""

    label: str  # "source 'erp', object 'customer'": every error names it
    table: str | None = None
    query: str | None = None
    columns: tuple[str, ...] | None = None
    watermark_column: str | None = None
    since: datetime | None = None
    distinct: tuple[str, ...] | None = None  # a keys extract: SELECT DISTINCT these


def _plain(value: Any) -> datetime | None:
    """A timestamp as naive UTC (watermarks and extract times are naive UTC everywhere)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return None


class SqlSource:
    """One read-only snapshot of a database: the clock, then any number of extracts.

    Use as a context manager; all reads between enter and exit see one transaction.
    """

    def __init__(self, *, source: str, url: str, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.source = source
        self._url = url
        self.chunk_rows = chunk_rows
        self._backend: _Backend | None = None

    def __enter__(self) -> SqlSource:
        backend_class = _AdbcPostgres if is_postgres(self._url) else _SqlAlchemy
        self._backend = self._guard(f"source {self.source!r}: cannot connect", lambda: backend_class(self._url, self))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _guard(self, what: str, call):
        try:
            return call()
        except SourceReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every driver has its own exception tree
            message = redact(f"{what}: {type(exc).__name__}: {exc}", self._url)
            raise SourceReadError(message, transient=bool(_TRANSIENT.search(message))) from None

    def now(self, clock_query: str | None) -> datetime:
        """The source's own now (``clock_query``), else the wall clock, naive UTC, whole seconds."""
        if not clock_query:
            return utc_now(whole_seconds=True)
        value = self._guard(f"source {self.source!r}: connection.clock_query failed", lambda: self._backend.scalar(clock_query))
        if isinstance(value, str):  # SQLite keeps timestamps as ISO text
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                pass
        if not isinstance(value, datetime):
            raise SourceReadError(f"source {self.source!r}: connection.clock_query must return one timestamp", transient=False)
        return _plain(value).replace(microsecond=0)

    def read(self, extract: SourceQuery) -> pa.RecordBatchReader:
        """Stream ``extract`` as Arrow batches with normalised types (see :func:`normalise_batch`)."""
        reader = self._guard(f"{extract.label}: extract failed", lambda: normalise_reader(self._backend.read(extract), extract.label))
        _check_schema(reader.schema, extract)

        def batches() -> Iterator[pa.RecordBatch]:
            iterator = iter(reader)
            while True:
                batch = self._guard(f"{extract.label}: extract failed", lambda: next(iterator, None))
                if batch is None:
                    return
                yield batch

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def inspector(self):
        return self._backend.inspector()

    def discover(self, call):
        """Run a catalog read (``call``) with the same error handling as extracts."""
        return self._guard(f"source {self.source!r}: cannot read the catalog", call)


def _check_schema(schema: pa.Schema, extract: SourceQuery) -> None:
    seen: set[str] = set()
    duplicates = sorted({name for name in schema.names if name in seen or seen.add(name)})
    if duplicates:
        raise SourceReadError(
            f"{extract.label}: the query returns duplicate column names {duplicates}; give them distinct aliases",
            transient=False,
        )
    column = extract.watermark_column
    if column and extract.distinct is None:
        if column not in schema.names:
            raise SourceReadError(f"{extract.label}: field 'watermark_column': column {column!r} is not in the extract", transient=False)
        kind = schema.field(column).type
        if not pa.types.is_timestamp(kind):
            raise SourceReadError(
                f"{extract.label}: watermark column {column!r} is {kind}, not a timestamp", transient=False
            )


# --- SQL text shared by both backends --------------------------------------------------------


def select_sql(extract: SourceQuery, quote, parameter: str) -> tuple[str, list[Any]]:
    """The SELECT for ``extract``; the watermark bound as a parameter, never pasted in."""
    relation = f"({extract.query}) AS medallion_src" if extract.query else _qualified(extract.table, quote)
    if extract.distinct is not None:
        keys = ", ".join(quote(c) for c in extract.distinct)
        return f"SELECT DISTINCT {keys} FROM {relation}", []
    columns = ", ".join(quote(c) for c in extract.columns) if extract.columns else "*"
    if extract.since is None:
        return f"SELECT {columns} FROM {relation}", []
    return f"SELECT {columns} FROM {relation} WHERE {quote(extract.watermark_column)} > {parameter}", [extract.since]


def _qualified(table: str, quote) -> str:
    return ".".join(quote(part) for part in table.split("."))


# --- type normalisation ----------------------------------------------------------------------

_PLAIN_TYPES = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_boolean,
    pa.types.is_date,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_null,
)


def normalise_field(field: pa.Field, label: str) -> tuple[pa.Field, Any]:
    """The landing type of one column and a function that converts its arrays.

    Timestamps with a time zone become UTC; times become ISO text (Delta Lake has no time
    type); PostgreSQL numeric with precision and scale becomes
    that decimal (unconstrained numeric stays exact text); uuid and json become text. Anything
    else the lakehouse cannot store fails, naming the column.
    """
    kind = field.type
    if pa.types.is_timestamp(kind):
        target = pa.timestamp("us", tz="UTC" if kind.tz else None)
        return pa.field(field.name, target), lambda a: pc.cast(a, target)
    if pa.types.is_time(kind):  # Delta Lake has no time type: exact ISO text, e.g. 12:34:56.789000
        return pa.field(field.name, pa.string()), lambda a: pc.cast(a, pa.string())
    if any(test(kind) for test in _PLAIN_TYPES):
        return pa.field(field.name, kind), lambda a: a
    if isinstance(kind, pa.BaseExtensionType):
        name = getattr(kind, "extension_name", "")
        type_name = getattr(kind, "type_name", "")
        if name == "arrow.uuid":
            return pa.field(field.name, pa.string()), _uuid_text
        if name == "arrow.json":
            return pa.field(field.name, pa.string()), lambda a: a.storage
        if name == "arrow.opaque" and type_name == "numeric":
            typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
            if typmod < 4:
                return pa.field(field.name, pa.string()), lambda a: a.storage
            precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
            target = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
            return pa.field(field.name, target), lambda a: pc.cast(a.storage, target)
    source_type = (field.metadata or {}).get(b"POSTGRESQL:type", str(kind).encode()).decode()
    raise UnsupportedColumnType(f"{label}: column {field.name!r} has type {source_type}, which cannot be landed")


def _uuid_text(array: pa.Array) -> pa.Array:
    return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in array.storage.to_pylist()], pa.string())


def normalise_reader(reader: pa.RecordBatchReader, label: str) -> pa.RecordBatchReader:
    converted = [normalise_field(f, label) for f in reader.schema]
    schema = pa.schema([f for f, _ in converted])

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            arrays = [convert(batch.column(i)) for i, (_, convert) in enumerate(converted)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


# --- PostgreSQL through ADBC -----------------------------------------------------------------


class _Backend:
    def close(self) -> None: ...


class _AdbcPostgres(_Backend):
    def __init__(self, url: str, owner: SqlSource):
        import adbc_driver_postgresql.dbapi as adbc

        self._owner = owner
        self._url = url
        self._con = adbc.connect(libpq_uri(url), autocommit=True)
        cursor = self._con.cursor()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        cursor.close()
        self._cursors: list[Any] = []

    def scalar(self, sql: str) -> Any:
        cursor = self._con.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
            return row[0] if row else None
        finally:
            cursor.close()

    def read(self, extract: SourceQuery) -> pa.RecordBatchReader:
        sql, params = select_sql(extract, quote_identifier, "$1")
        cursor = self._con.cursor()
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(16 << 20)})
        cursor.execute(sql, parameters=tuple(params) or None)
        self._cursors.append(cursor)
        return cursor.fetch_record_batch()

    def inspector(self):
        import sqlalchemy as sa

        engine = sa.create_engine(sqlalchemy_url(self._url))
        return sa.inspect(engine)

    def close(self) -> None:
        for cursor in self._cursors:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - a cursor of a failed read may already be gone
                pass
        self._con.close()  # the read-only transaction ends with the session


def libpq_uri(url: str) -> str:
    """libpq takes ``postgresql://``; SQLAlchemy URLs may name a driver (``postgresql+psycopg``)."""
    scheme, rest = url.split(":", 1)
    return "postgresql:" + rest if scheme.startswith("postgres") else url


def sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split(":", 1)
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg:" + rest
    if scheme == "mysql" or scheme == "mariadb":
        return f"{scheme}+pymysql:" + rest
    return url


def _driver_missing(source: str, url: str, exc: Exception) -> str:
    dialect, _, driver = url.split(":", 1)[0].partition("+")
    installed = "medallion installs the drivers of postgresql://, mysql:// and mariadb://"
    if driver and dialect in ("postgresql", "postgres", "mysql", "mariadb"):
        return (
            f"source {source!r}: the database URL names the driver {driver!r}, which is not installed here ({exc}); "
            f"write {dialect}:// without a driver ({installed}) or install that driver"
        )
    return f"source {source!r}: no SQLAlchemy dialect for {dialect!r} is installed here ({exc}); {installed}; install that dialect"


# --- everything else through SQLAlchemy ------------------------------------------------------


class _SqlAlchemy(_Backend):
    def __init__(self, url: str, owner: SqlSource):
        import sqlalchemy as sa

        self._sa = sa
        self._owner = owner
        try:
            self._engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise SourceReadError(_driver_missing(owner.source, url, exc), transient=False) from None
        self._con = self._engine.connect()
        if self._engine.dialect.name in ("mysql", "mariadb"):
            self._con.exec_driver_sql("SET time_zone = '+00:00'")
            self._con.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self._con.commit()
        self._con.begin()
        self._quote = self._engine.dialect.identifier_preparer.quote

    def scalar(self, sql: str) -> Any:
        return self._con.exec_driver_sql(sql).scalar()

    def inspector(self):
        return self._sa.inspect(self._con)

    def read(self, extract: SourceQuery) -> pa.RecordBatchReader:
        sa = self._sa
        sql, params = select_sql(extract, self._quote, ":since")
        typed = self._column_types(extract)
        statement = sa.text(sql)
        if typed:
            statement = statement.columns(*[sa.column(name, kind) for name, kind in typed.items()])
        result = self._con.execution_options(stream_results=True, max_row_buffer=self._owner.chunk_rows).execute(
            statement, {"since": params[0]} if params else {}
        )
        names = list(result.keys())
        chunks = result.partitions(self._owner.chunk_rows)
        if typed:
            schema = pa.schema([pa.field(n, arrow_type_of(typed[n], extract.label, n)) for n in names])
            first: list = []
        else:  # a custom query: types from the values of the first chunk
            first = next(chunks, [])
            schema = _infer_schema(names, first)

        def batches() -> Iterator[pa.RecordBatch]:
            if first:
                yield _batch(first, schema)
            for rows in chunks:
                yield _batch(rows, schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _column_types(self, extract: SourceQuery) -> dict[str, Any]:
        if extract.table is None:
            return {}
        schema, _, table = extract.table.rpartition(".")
        reflected = {c["name"]: c["type"] for c in self._sa.inspect(self._con).get_columns(table, schema=schema or None)}
        wanted = list(extract.distinct or extract.columns or reflected)
        missing = [c for c in wanted if c not in reflected]
        if missing:
            raise SourceReadError(f"{extract.label}: table {extract.table!r} has no column(s) {missing}", transient=False)
        # JSON stays the text the database holds, not re-serialised by a result processor.
        return {c: self._sa.Text() if isinstance(reflected[c], self._sa.JSON) else reflected[c] for c in wanted}

    def close(self) -> None:
        try:
            self._con.rollback()
            self._con.close()
        finally:
            self._engine.dispose()


def arrow_type_of(kind: Any, label: str, column: str) -> pa.DataType:
    """The Arrow type of a SQLAlchemy column type (reflected by the dialect from the database)."""
    import sqlalchemy as sa

    name = type(kind).__name__.upper()
    if isinstance(kind, sa.Boolean) or (name == "TINYINT" and getattr(kind, "display_width", None) == 1):
        return pa.bool_()
    if isinstance(kind, sa.SmallInteger):
        return pa.int16()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float) or name in ("DOUBLE", "REAL", "DOUBLE_PRECISION", "FLOAT"):
        return pa.float64()
    if isinstance(kind, sa.Numeric):
        if kind.precision is None:
            return pa.string()
        scale = kind.scale or 0
        return pa.decimal128(kind.precision, scale) if kind.precision <= 38 else pa.decimal256(kind.precision, scale)
    if isinstance(kind, sa.DateTime):
        aware = getattr(kind, "timezone", False) or name == "TIMESTAMP" and "mysql" in type(kind).__module__
        return pa.timestamp("us", tz="UTC" if aware else None)
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.Time):
        return pa.time64("us")
    if isinstance(kind, sa.Uuid | sa.JSON | sa.String | sa.Enum) or name in ("UUID", "JSON", "INET"):
        return pa.string()
    if isinstance(kind, sa.LargeBinary | sa.types._Binary):
        return pa.binary()
    raise UnsupportedColumnType(f"{label}: column {column!r} has type {kind}, which cannot be landed")


def _python_value(value: Any) -> Any:
    if isinstance(value, timedelta):  # MySQL TIME comes back as a duration since midnight
        return (datetime.min + value).time()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


def _column_values(rows: list, index: int, kind: pa.DataType) -> list:
    values = [_python_value(row[index]) for row in rows]
    if pa.types.is_boolean(kind):
        return [None if v is None else bool(v) for v in values]
    if pa.types.is_floating(kind):  # MySQL DOUBLE comes back as Decimal
        return [None if v is None else float(v) for v in values]
    if pa.types.is_string(kind):
        return [v if v is None or isinstance(v, str) else str(v) for v in values]
    if pa.types.is_timestamp(kind) and kind.tz:
        return [v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in values]
    return values


def _batch(rows: list, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array(_column_values(rows, i, f.type), type=f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _infer_schema(names: list[str], rows: list) -> pa.Schema:
    fields = []
    for i, name in enumerate(names):
        values = [_python_value(row[i]) for row in rows]
        sample = next((v for v in values if v is not None), None)
        kind = pa.array(values).type if sample is not None else pa.string()
        if isinstance(sample, Decimal):
            kind = pa.decimal128(38, max(-(v.as_tuple().exponent) for v in values if v is not None))
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "SourceQuery",
    "SourceReadError",
    "SqlSource",
    "UnsupportedColumnType",
    "arrow_type_of",
    "is_postgres",
    "redact",
    "select_sql",
]
