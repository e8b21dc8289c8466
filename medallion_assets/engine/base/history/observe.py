"""A batch's extracts as observations: versions, sightings, delete events and the keys present."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.history.spec import HistorySpec, _keys
from medallion_assets.engine.base.reader import DELETE_FLAG, Extract, repeated_keys
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal, timestamp_literal


def _content_hash(spec: HistorySpec) -> str:
    # Sorted names: the hash of a row does not depend on where a column sits in the file.
    columns = ", ".join(q(c) for c in sorted(spec.columns))
    return f"(hash({columns}) & 9223372036854775807)::BIGINT"


def observe(con: duckdb.DuckDBPyConnection, extract: Extract, spec: HistorySpec, name: str) -> bool:
    """Register the extract's observations as relations ``<name>_v``, ``<name>_s``, ``<name>_e``
    (versions, sightings, delete events) and, for full/keys extracts, ``<name>_k`` (keys present).

    The extract is deduplicated once into ``<name>_all``; the others are views over it, so a
    1M-row full extract is copied once, not four times. ``_mt`` is the modify date as given
    (null when the table has none or the row's is null: then the extract's time stands in).
    Returns whether ``<name>_rep`` holds every key with several rows (see :func:`repeated_keys`)."""
    staged = not isinstance(extract.rows, pa.Table)  # a StagedRows: a table of this process's database
    if staged:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_raw AS SELECT * FROM {extract.rows.table}")
    else:
        con.register(f"{name}_raw", extract.rows)
    keys = _keys(spec)
    if extract.load_type == "keys":
        # Only ever anti-joined against: duplicates do not matter, so no DISTINCT copy of 1M keys.
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT {keys} FROM {name}_raw")
        return False
    modify = spec.modify_date_column
    mt_expr = f"CAST({q(modify)} AS TIMESTAMP)" if modify else "NULL::TIMESTAMP"
    has_flag = DELETE_FLAG in extract.rows.column_names
    is_delete = q(DELETE_FLAG) if has_flag else "false"
    cols = ", ".join(q(c) for c in spec.columns)
    rows = f"{cols}, {mt_expr} AS _mt, {_content_hash(spec)} AS _hash, {is_delete} AS _del FROM {name}_raw"
    # Rows with distinct keys are distinct rows: only the rows of repeated keys need deduplicating.
    if staged:
        repeated = extract.rows.repeated
        if repeated is not None:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_rep AS SELECT * FROM {repeated}")
            (count,) = con.execute(f"SELECT count(*) FROM {repeated}").fetchall()[0]
            repeated = range(count)  # only its length matters below
    else:
        repeated = repeated_keys(extract.rows, spec.keys)
        if repeated is not None:
            con.register(f"{name}_rep", pa.table({spec.keys[0]: repeated}))
    if repeated is None:
        select = f"SELECT DISTINCT {rows}"
    elif len(repeated) == 0:
        select = f"SELECT {rows}"
    else:
        among = f"{keys} IN (SELECT {keys} FROM {name}_rep)"
        select = f"SELECT {rows} WHERE NOT {among} UNION ALL SELECT DISTINCT {rows} WHERE {among}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name}_all AS SELECT *, coalesce(_mt, $t) AS _m FROM ({select})",
        {"t": extract.extracted_at},
    )
    if staged:
        con.execute(f"DROP VIEW {name}_raw")
    else:
        con.unregister(f"{name}_raw")
    # Views cannot take parameters: the extract's time and file go in as escaped literals.
    t = timestamp_literal(extract.extracted_at)
    f = string_literal(extract.file) + "::VARCHAR"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_v AS
        SELECT {cols}, _m, _hash, {t} AS _t, {f} AS _file FROM {name}_all WHERE NOT _del"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_s AS
        SELECT DISTINCT {keys}, _m, _hash, {t} AS _t, {f} AS _file, _mt FROM {name}_all WHERE NOT _del"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_e AS
        SELECT DISTINCT {keys}, _m, {t} AS _t, {f} AS _file FROM {name}_all WHERE _del"""
    )
    if extract.load_type == "full":
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT DISTINCT {keys} FROM {name}_all WHERE NOT _del")
    return repeated is not None


def _several_rows(spec: HistorySpec, name: str, *, listed: bool) -> str:
    """The keys with several rows in extract ``name`` or a deletion: with the repeated keys
    ``listed`` in ``<name>_rep``, only their rows are grouped."""
    k = _keys(spec)
    if not listed:
        return f"SELECT {k} FROM {name}_all GROUP BY ALL HAVING count(*) > 1 OR bool_or(_del)"
    return f"""SELECT {k} FROM {name}_all WHERE _del
        UNION SELECT {k} FROM {name}_all WHERE {k} IN (SELECT {k} FROM {name}_rep) GROUP BY ALL HAVING count(*) > 1"""
