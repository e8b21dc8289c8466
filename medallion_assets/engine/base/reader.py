"""Landing files -> prepared Arrow batches.

Which files a partition load reads (the read behaviour), reading CSV/Parquet/JSON with their read
options, and the per-file preparation: translations, snake_case names, casts, the custom
transformation, projection, key checks, delete events, data-quality rules, exact duplicates.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.base.schema import BaseLoadError, normalise_names, plain_types
from medallion_assets.engine.sqltext import quote_identifier
from medallion_assets.engine.storage.lake import LakeRoot, as_path, is_remote, local_copy
from medallion_assets.engine.storage.paths import LandingFile, list_landing_files
from medallion_assets.engine.storage.scan import connect

DELETE_FLAG = "_lh_delete_event"


@dataclass(frozen=True)
class Extract:
    """One landing file, read and prepared. ``rows`` holds data columns only (plus the delete flag
    when the table has a delete condition); keys files hold the key columns."""

    rows: pa.Table
    load_type: str
    extracted_at: datetime
    file: str
    rows_read: int = 0
    quarantine: pa.Table | None = None


@dataclass
class Selection:
    files: list[LandingFile] = field(default_factory=list)
    skipped: list[LandingFile] = field(default_factory=list)


def select_partition_files(table: BaseTable, files: list[LandingFile]) -> Selection:
    """Apply the read behaviour to one partition's files (all landing refs together).

    ``full``: the newest full extract only. ``auto``: the newest full extract (if any) plus every
    later delta, in timestamp order, and the newest keys extract not older than that full one;
    for scd2, every file of the partition, since each may carry a version the history keeps (a
    delta at 01:00 before a full extract at 09:00 still shows the 01:00 version).
    """
    fulls = [f for f in files if f.load_type == "full"]
    latest_full = max(fulls, key=lambda f: (f.extracted_at, f.name)) if fulls else None
    chosen: list[LandingFile] = []
    if table.read_behaviour == "auto" and table.write_behaviour == "scd2":
        chosen = list(files)
    elif table.read_behaviour == "full":
        chosen = [latest_full] if latest_full else []
    else:
        since = latest_full.extracted_at if latest_full else datetime.min
        if latest_full:
            chosen.append(latest_full)
        chosen += [f for f in files if f.load_type == "delta" and f.extracted_at >= since]
        if table.keyed:
            keys = [f for f in files if f.load_type == "keys" and f.extracted_at >= since]
            if keys:
                chosen.append(max(keys, key=lambda f: (f.extracted_at, f.name)))
    chosen.sort(key=lambda f: (f.extracted_at, ("full", "delta", "keys").index(f.load_type), f.name))
    return Selection(files=chosen, skipped=[f for f in files if f not in chosen])


def partition_files(table: BaseTable, data_dir: LakeRoot, partition_date: date) -> Selection:
    files: list[LandingFile] = []
    for ref in table.landing:
        files += list_landing_files(data_dir, ref.source, ref.object, partition_date=partition_date)
    return select_partition_files(table, files)


def history_files(table: BaseTable, data_dir: LakeRoot, until: date) -> Selection:
    """Every partition's selection up to ``until`` (a rebuild replays them all)."""
    by_day: dict[date, list[LandingFile]] = {}
    for ref in table.landing:
        for f in list_landing_files(data_dir, ref.source, ref.object):
            if f.partition_date <= until:
                by_day.setdefault(f.partition_date, []).append(f)
    result = Selection()
    for day in sorted(by_day):
        part = select_partition_files(table, by_day[day])
        result.files += part.files
        result.skipped += part.skipped
    return result


def lineage_name(path: Path, data_dir: LakeRoot) -> str:
    """``lh_source_file``: the landing path relative to the data root (stable if the root moves)."""
    try:
        return as_path(path).resolve().relative_to(as_path(data_dir).resolve()).as_posix()
    except ValueError:
        return as_path(path).as_posix()


def read_landing_file(path: Path, fmt: str, options: dict[str, Any]) -> pa.Table:
    """Read one whole file as Arrow (small files, and the rare steps that need a file at once);
    loads stream a file with :func:`landing_batches` instead."""
    with landing_batches(path, fmt, options) as (schema, batches):
        parts = list(batches)
        return pa.concat_tables(parts) if parts else schema.empty_table()


@contextmanager
def landing_batches(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[tuple[pa.Schema, Iterator[pa.Table]]]:
    """One file as a stream of Arrow tables of at most ``BATCH_ROWS`` rows, storage types made
    plain; CSV and JSON through DuckDB's readers (type inference), Parquet with pyarrow.

    A file on object storage is downloaded to a local temporary file first and read the same way,
    so the messages (CSV line numbers included) are the ones of a local read, naming its URI."""
    path = as_path(path)
    if not is_remote(path):
        with _local_batches(path, fmt, options) as opened:
            yield opened
        return
    try:
        if path.stat().st_size == 0:
            raise BaseLoadError(f"{path}: the {fmt} landing file is empty (0 bytes)")
        with local_copy(path) as local:
            try:
                with _local_batches(local, fmt, options) as opened:
                    yield opened
            except BaseLoadError as exc:
                raise BaseLoadError(str(exc).replace(str(local), str(path))) from None
    except OSError as exc:  # gone since it was listed, or the store did not answer
        raise BaseLoadError(f"{path}: cannot read {fmt} landing file: {type(exc).__name__}: {exc}") from None


BATCH_ROWS = 1 << 17


@contextmanager
def _local_batches(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[tuple[pa.Schema, Iterator[pa.Table]]]:
    if path.is_file() and path.stat().st_size == 0:
        raise BaseLoadError(f"{path}: the {fmt} landing file is empty (0 bytes)")
    con = connect()
    try:
        try:
            if fmt == "parquet":
                # DuckDB's reader: under the memory budget, decoding a row group at a time
                # (pyarrow's held about twice as much for the same file).
                relation, args, params = con.sql("SELECT * FROM read_parquet(?)", params=[str(path)]), None, None
            else:
                relation, args, params = _text_relation(con, path, fmt, options)
            reader = relation.to_arrow_reader(BATCH_ROWS)
            schema = reader.schema
            raw = (pa.Table.from_batches([b]) for b in reader)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            hint = " (corrupted, truncated or not Parquet)" if fmt == "parquet" else ""
            raise BaseLoadError(f"{path}: cannot read {fmt} landing file{hint}: {exc}") from None
        yield plain_types(schema.empty_table()).schema, _checked(raw, con, path, fmt=fmt, options=options, args=args, params=params)
    finally:
        con.close()


def _checked(raw, con, path: Path, *, fmt: str, options: dict[str, Any], args, params) -> Iterator[pa.Table]:
    """The batches, with a reader's error on the way (a broken CSV row) as a clear BaseLoadError."""
    try:
        for batch in raw:
            yield plain_types(batch)
    except duckdb.Error as exc:
        detail = _csv_position(con, path, args, params, _csv_options(options)["delimiter"]) if fmt == "csv" else None
        raise BaseLoadError(f"{path}: cannot read {fmt} landing file: {detail or exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise BaseLoadError(f"{path}: cannot read {fmt} landing file: {exc}") from None


def landing_relation(con, path: Path, fmt: str, options: dict[str, Any]):
    """The DuckDB relation reading a local landing file (errors surface when it runs), or None for
    an empty or remote file."""
    if is_remote(path) or not path.is_file() or path.stat().st_size == 0:
        return None
    if fmt == "parquet":
        return con.sql("SELECT * FROM read_parquet(?)", params=[str(path)])
    return _text_relation(con, path, fmt, options)[0]


def _csv_options(options: dict[str, Any]) -> dict[str, Any]:
    # The dialect is stated, not sniffed: a sniffer that meets a broken row falls back to another
    # dialect and loads garbage; stated, a broken row is an error with its line.
    return {"delimiter": ",", "quote_char": '"', "header": True, **options}


def _text_relation(con, path: Path, fmt: str, options: dict[str, Any]):
    """The DuckDB relation reading a CSV or JSON landing file, and the read_csv arguments used."""
    if fmt == "csv":
        options = _csv_options(options)
        args, params = ["?", "strict_mode := true"], [str(path)]
        for option, name in (
            ("delimiter", "delim"),
            ("header", "header"),
            ("quote_char", "quote"),
            ("escape_char", "escape"),
            ("encoding", "encoding"),
            ("skip_rows", "skip"),
        ):
            if option in options:
                args.append(f"{name} := ?")
                params.append(options[option])
        if "null_values" in options:
            nulls = options["null_values"]
            args.append("nullstr := ?")
            params.append(list(nulls) if isinstance(nulls, list | tuple) else [nulls])
        try:
            return con.sql(f"SELECT * FROM read_csv({', '.join(args)})", params=params), args, params
        except duckdb.Error as exc:
            detail = _csv_position(con, path, args, params, options["delimiter"]) or exc
            raise BaseLoadError(f"{path}: cannot read csv landing file: {detail}") from None
    records = options.get("records")
    if records is None:
        return con.sql("SELECT * FROM read_json(?)", params=[str(path)]), None, None
    return con.sql("SELECT * FROM read_json(?, records := ?)", params=[str(path), records]), None, None


def _csv_position(con: Any, path: Path, args: list[str], params: list[Any], delimiter: str) -> str | None:
    """Read the file again as text columns named by its header, without sniffing, so DuckDB
    reports the line and the kind of the first broken row; ``None`` when that read succeeds."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline().rstrip("\r\n").split(delimiter)
    except OSError:
        return None
    columns = {name.strip().strip('"') or f"column{i}": "VARCHAR" for i, name in enumerate(header)}
    try:
        con.sql(
            f"SELECT * FROM read_csv({', '.join(args)}, auto_detect := false, columns := ?)", params=[*params, columns]
        ).fetchall()
    except duckdb.Error as exc:
        return str(exc)
    return None


@lru_cache(maxsize=32)
def resolve_transformation(dotted: str) -> Callable[[Any], Any]:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BaseLoadError(f"transformation {dotted!r}: cannot import module {module_name!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise BaseLoadError(f"transformation {dotted!r}: {module_name} has no function {attr!r}")
    return function


def _apply_transformation(table: pa.Table, dotted: str, where: str) -> pa.Table:
    result = resolve_transformation(dotted)(table)
    if isinstance(result, pa.Table):
        return result
    if hasattr(result, "to_arrow_table"):  # a DuckDB relation
        return result.to_arrow_table()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(result, pd.DataFrame):
        return pa.Table.from_pandas(result, preserve_index=False)
    raise BaseLoadError(f"{where}: transformation {dotted!r} returned {type(result).__name__}, expected an Arrow table or DataFrame")


def _cast_types(table: pa.Table, column_types: dict[str, str], where: str) -> pa.Table:
    wanted = {c: t for c, t in column_types.items() if c in table.column_names}
    if not wanted:
        return table
    con = connect()
    try:
        con.register("batch", table)
        quoted = {c: quote_identifier(c) for c in table.column_names}
        select = ", ".join(
            f"CAST({quoted[c]} AS {wanted[c]}) AS {quoted[c]}" if c in wanted else quoted[c] for c in table.column_names
        )
        return plain_types(con.sql(f"SELECT {select} FROM batch").to_arrow_table())
    except duckdb.Error as exc:
        raise BaseLoadError(f"{where}: column_types cast failed: {exc}") from None
    finally:
        con.close()


def check_named_columns(table: pa.Table, meta: BaseTable, where: str, *, fields: Sequence[str]) -> None:
    """Every column the table's metadata names in ``fields`` is in the landed data: else an error
    naming the landing file, the metadata file, the field and the column (not retried)."""
    for field_name in fields:
        value = getattr(meta, field_name)
        named = [value] if isinstance(value, str) else list(value or [])
        for column in named:
            if column not in table.column_names:
                label = "business key column" if field_name == "business_keys" else "column"
                raise BaseLoadError(
                    f"{where}: {label} {column!r} is missing: field {field_name!r} of table {meta.name!r} in {meta.file} "
                    f"names it (columns: {', '.join(table.column_names)})"
                )


def _check_keys(table: pa.Table, keys: list[str], where: str, *, first_row: int = 1) -> None:
    for key in keys:
        nulls = pc.is_null(table.column(key))
        if pc.any(nulls).as_py():
            row = pc.index(nulls, True).as_py() + first_row
            raise BaseLoadError(f"{where}: row {row}: business key column {key!r} is null")


def _rule_sql(rule: Any, params: list[Any]) -> str:
    column = quote_identifier(rule.column)
    tests: list[str] = []
    if rule.not_null:
        tests.append(f"{column} IS NOT NULL")
    if rule.allowed_values is not None:
        marks = ", ".join("?" for _ in rule.allowed_values)
        params.extend(rule.allowed_values)
        tests.append(f"({column} IS NULL OR {column} IN ({marks}))")
    if rule.min is not None:
        params.append(rule.min)
        tests.append(f"({column} IS NULL OR {column} >= ?)")
    if rule.max is not None:
        params.append(rule.max)
        tests.append(f"({column} IS NULL OR {column} <= ?)")
    if rule.pattern is not None:
        params.append(rule.pattern)
        tests.append(f"({column} IS NULL OR regexp_full_match(CAST({column} AS VARCHAR), ?))")
    return " AND ".join(tests)


def _apply_rules(table: pa.Table, meta: BaseTable, where: str) -> tuple[pa.Table, pa.Table | None]:
    """Split rows into (passing, quarantined with lh_quarantine_rules)."""
    if not meta.quality_rules or table.num_rows == 0:
        return table, None
    for rule in meta.quality_rules:
        if rule.column not in table.column_names:
            raise BaseLoadError(f"{where}: data-quality rule {rule.name!r} checks column {rule.column!r}, which is missing")
    failed: list[str] = []
    ordered: list[Any] = []  # parameters in the order the SQL uses them
    for rule in meta.quality_rules:
        own: list[Any] = []
        test = _rule_sql(rule, own)
        failed.append(f"CASE WHEN coalesce(({test}), false) THEN NULL ELSE ? END")
        ordered.extend([*own, rule.name])
    con = connect()
    try:
        con.register("batch", table)
        failures = f"concat_ws(',', {', '.join(failed)})"
        # Most files pass every rule: one counting scan finds that out without copying the rows.
        (failing,) = con.execute(f"SELECT count(*) FROM batch WHERE {failures} <> ''", ordered).fetchall()[0]
        if not failing:
            return table, None
        flagged = con.sql(f"SELECT *, {failures} AS lh_quarantine_rules FROM batch", params=ordered).to_arrow_table()
    except duckdb.Error as exc:
        raise BaseLoadError(f"{where}: data-quality rules failed to evaluate: {exc}") from None
    finally:
        con.close()
    bad = pc.not_equal(flagged.column("lh_quarantine_rules"), "")
    good = flagged.filter(pc.invert(bad)).drop_columns(["lh_quarantine_rules"])
    quarantined = flagged.filter(bad)
    return good, (quarantined if quarantined.num_rows else None)


AMBIGUOUS_KEY_RULE = "ambiguous_business_key"


def repeated_keys(table: pa.Table, keys: list[str] | tuple[str, ...]) -> pa.Array | None:
    """The values of the key that occur on more than one row (empty when none), or None when not
    cheaply known. Only for one integer key without nulls: a sorted extract is checked in one
    vectorised pass, dense keys by counting them, others by sorting a copy of the key column (all
    far cheaper than grouping every row). A few repeated keys then limit the row-level work
    (deduplication, the ambiguity check) to their rows."""
    if len(keys) != 1 or keys[0] not in table.column_names:
        return None
    column = table.column(keys[0])
    if not pa.types.is_integer(column.type) or column.null_count:
        return None
    values = column.to_numpy()
    if len(values) < 2 or bool(np.all(values[1:] > values[:-1])):
        return pa.array([], column.type)
    if values.dtype != np.uint64:  # every other integer type fits int64 exactly
        values = values.astype(np.int64, copy=False)
        low, high = int(values.min()), int(values.max())
        if high - low < 8 * len(values):  # dense keys (ids): count them in one pass, no sort
            repeated = np.flatnonzero(np.bincount(values - low) > 1) + low
            return pa.array(repeated).cast(column.type)
    ordered = np.sort(values)
    same = ordered[1:] == ordered[:-1]
    return pa.array(np.unique(ordered[1:][same])).cast(column.type)


def _set_aside_ambiguous_keys(table: pa.Table, meta: BaseTable, where: str) -> tuple[pa.Table, pa.Table | None]:
    """Rows of one key that differ while nothing orders them (same or no modify date) cannot be
    merged without guessing which is right: they go to quarantine, not silently one of them."""
    if not meta.keyed or table.num_rows < 2:
        return table, None
    repeated = repeated_keys(table, meta.business_keys)
    if repeated is not None and len(repeated) == 0:
        return table, None
    if repeated is None:
        candidates = table
    else:  # only the rows of repeated keys can be ambiguous
        rows = np.flatnonzero(pc.is_in(table.column(meta.business_keys[0]), value_set=repeated).to_numpy(zero_copy_only=False))
        candidates = table.take(rows)
    flags = _ambiguous_rows(candidates, meta, where)
    if flags is None:
        return table, None
    if repeated is None:
        keep = pc.invert(flags)
    else:
        mask = np.ones(table.num_rows, dtype=bool)
        mask[rows[flags.to_numpy(zero_copy_only=False)]] = False
        keep = pa.array(mask)
    rest = table.filter(pc.invert(keep))
    rest = rest.append_column("lh_quarantine_rules", pa.array([AMBIGUOUS_KEY_RULE] * rest.num_rows, pa.string()))
    return table.filter(keep), rest


def _ambiguous_rows(table: pa.Table, meta: BaseTable, where: str) -> pa.Array | None:
    """A flag per row: its key (and modify date) has rows that differ. None when no row has."""
    group = [*meta.business_keys, *([meta.modify_date_column] if meta.modify_date_column else [])]
    partition = ", ".join(quote_identifier(c) for c in group)
    row_hash = f"hash({', '.join(quote_identifier(c) for c in table.column_names)})"  # without lh_row
    con = connect()
    try:
        con.register("batch", table.append_column("lh_row", pa.array(np.arange(table.num_rows))))  # lh_: reserved
        # Most extracts have none: one aggregate finds that out without copying the rows.
        (ambiguous,) = con.execute(
            f"SELECT count(*) FROM (SELECT {partition} FROM batch GROUP BY ALL HAVING min({row_hash}) <> max({row_hash}))"
        ).fetchall()[0]
        if not ambiguous:
            return None
        # Row order kept: the flags line up with the table's rows.
        flags = con.sql(
            f"SELECT min({row_hash}) OVER w <> max({row_hash}) OVER w AS f FROM batch "
            f"WINDOW w AS (PARTITION BY {partition}) ORDER BY lh_row"
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise BaseLoadError(f"{where}: checking business keys for ambiguous rows failed: {exc}") from None
    finally:
        con.close()
    flag = flags.column("f").combine_chunks()
    return flag if pc.any(flag).as_py() else None


def _delete_flag(table: pa.Table, meta: BaseTable, where: str) -> pa.Table:
    condition = meta.delete_condition
    if condition is None:
        return table
    if condition.column not in table.column_names:
        raise BaseLoadError(f"{where}: delete_condition column {condition.column!r} is missing")
    column = table.column(condition.column)
    values = pa.array(condition.values)
    try:
        if values.type != column.type and len(values):
            values = values.cast(column.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = pa.array([str(v) for v in condition.values])
        column = column.cast(pa.string())
    flag = pc.fill_null(pc.is_in(column, value_set=values), False)
    return table.append_column(DELETE_FLAG, flag)


def _shape(raw: pa.Table, meta: BaseTable, load_type: str, where: str, *, first_row: int, transform: bool) -> pa.Table:
    """Names, casts, the transformation, the projection and the checks of columns and keys."""
    present = set(raw.column_names)
    renames = {old: new for old, new in meta.translations.items() if old in present}
    table = raw.rename_columns([renames.get(c, c) for c in raw.column_names]) if renames else raw
    table = normalise_names(table, where)
    table = _cast_types(table, meta.column_types, where)
    if load_type == "keys":
        check_named_columns(table, meta, where, fields=["business_keys"])
        _check_keys(table, meta.business_keys, where, first_row=first_row)
        return table.select(meta.business_keys)
    if transform and meta.transformation:
        table = normalise_names(plain_types(_apply_transformation(table, meta.transformation, where)), where)
    if meta.columns is not None:
        check_named_columns(table, meta, where, fields=["columns"])
        table = table.select(list(meta.columns) + ([meta.delete_condition.column] if keeps_delete_column(meta) else []))
    named = ["business_keys"] if meta.keyed else []
    check_named_columns(table, meta, where, fields=[*named, "modify_date_column", "partition_by", "history_columns"])
    reserved = [c for c in table.column_names if c.startswith("lh_")]
    if reserved:
        raise BaseLoadError(f"{where}: column(s) {reserved} use the reserved lh_ prefix")
    if meta.keyed:
        _check_keys(table, meta.business_keys, where, first_row=first_row)
    return table


def keeps_delete_column(meta: BaseTable) -> bool:
    """The delete condition reads a column the projection leaves out: kept until the flag is set."""
    return meta.delete_condition is not None and meta.columns is not None and meta.delete_condition.column not in meta.columns


def prepare_batch(raw: pa.Table, meta: BaseTable, load_type: str, where: str, *, first_row: int = 1) -> tuple[pa.Table, pa.Table | None]:
    """The row-by-row part of the preparation, for one batch of a file (no transformation, no
    check across rows): returns (rows with the delete flag, quarantined rows or None). The delete
    condition's column stays when the projection leaves it out (see :func:`keeps_delete_column`)."""
    table = _shape(raw, meta, load_type, where, first_row=first_row, transform=False)
    if load_type == "keys":
        return table, None
    table, quarantined = _apply_rules(table, meta, where)
    return _delete_flag(table, meta, where), quarantined


def prepare(raw: pa.Table, meta: BaseTable, load_type: str, where: str) -> tuple[pa.Table, pa.Table | None]:
    """The whole preparation of one file in Arrow; returns (rows, quarantined rows or None)."""
    table = _shape(raw, meta, load_type, where, first_row=1, transform=True)
    if load_type == "keys":
        return table, None
    table, quarantined = _apply_rules(table, meta, where)
    table, ambiguous = _set_aside_ambiguous_keys(table, meta, where)
    if ambiguous is not None:
        quarantined = ambiguous if quarantined is None else pa.concat_tables([quarantined, ambiguous], promote_options="permissive")
    table = _delete_flag(table, meta, where)
    if keeps_delete_column(meta):
        table = table.drop_columns([meta.delete_condition.column])
    return table, quarantined


def read_extract(meta: BaseTable, landing: LandingFile, data_dir: LakeRoot) -> Extract:
    where = f"table {meta.name!r}, file {landing.path}"
    raw = read_landing_file(landing.path, landing.format if landing.format else meta.format, meta.read_options)
    rows, quarantined = prepare(raw, meta, landing.load_type, where)
    return Extract(
        rows=rows,
        load_type=landing.load_type,
        extracted_at=landing.extracted_at,
        file=lineage_name(landing.path, data_dir),
        rows_read=raw.num_rows,
        quarantine=quarantined,
    )
