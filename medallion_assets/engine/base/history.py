"""Keyed history (scd1/scd2) as a pure function of the set of extracts seen.

Why a function of the set: DESIGN.md requires that processing landing files or partitions in any
order, or twice, gives the same rows. A sequential merge cannot promise that once late-arriving
rows, out-of-order partitions and deletions mix, so the table is derived from *observations*:

* ``version``  a distinct row content of a key: (key, modify date ``_m``, content ``_hash``) with
  its data columns and the first extract that carried it (``_t``, ``_file``);
* ``sighting`` every extract that carried a version (key, ``_m``, ``_hash``, ``_t``, ``_file``);
* ``absent``   a key missing from a full or keys extract at ``_t`` although seen before ``_t``;
* ``event``    an explicit delete event (delete condition) with its modify date ``_m``;
* ``extract``  a landing file already applied (``_file``, ``_t``, ``_load_type``).

:func:`plan` adds a batch of extracts to a set of observations and returns the new observations
plus the recomputed history of every key the batch touches; :func:`fold` is the history itself,
one set-based DuckDB query (no per-row Python):

1. An absence at ``T`` deletes a key seen in an earlier extract and not seen in an extract at ``T``;
   a delete event deletes at its modify date.
2. A sighting starts its version at the modify date, unless a deletion observed before that
   extract is not earlier than the modify date: then the key *came back* at the extract's time.
   Such a come-back is dropped when a version with a later modify date already starts before it
   (the source moved on; modify dates never run backwards within a key's history).
3. Events are ordered by that time (a deletion after a row at the same instant); the state at an
   event is (deleted?, tracked attributes). A new version starts where the state changes; the
   other columns show the latest content within the version (updated in place).
4. ``lh_valid_to`` is the next version's start minus one microsecond, or 9999-12-31.

SCD1 keeps the last version of each key. The loader (``load.py``) keeps the observations in a
hidden Delta table ``base/_state/<table>`` so they travel with the data and commit atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.reader import DELETE_FLAG, Extract
from medallion_assets.engine.base.scan import connect

OPEN_END = datetime(9999, 12, 31)
KINDS = ("version", "sighting", "absent", "event", "extract")
STATE_COLUMNS = ("_kind", "_m", "_t", "_hash", "_file", "_load_type")
HISTORY_COLUMNS = ("lh_source_file", "lh_is_deleted", "lh_valid_from", "lh_valid_to", "lh_is_current")


def q(name: str) -> str:
    """A double-quoted identifier (names are validated snake_case before they get here)."""
    return '"' + name.replace('"', '""') + '"'


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

    def with_columns(self, columns: Sequence[str]) -> HistorySpec:
        return HistorySpec(self.keys, tuple(columns), self.modify_date_column, self.history_columns)


@dataclass
class Plan:
    """The outcome of adding a batch: observations to store, and the affected keys' history."""

    new_state: pa.Table  # rows to append to the observation table
    history: pa.Table  # every version of every affected key (data columns + HISTORY_COLUMNS)
    affected: pa.Table  # the affected keys
    batch_keys: int  # distinct keys carried by the batch's data rows


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
    ]
    return pa.schema(fields)


def empty_state(data_schema: pa.Schema) -> pa.Table:
    return state_schema(data_schema).empty_table()


def _content_hash(spec: HistorySpec) -> str:
    # Sorted names: the hash of a row does not depend on where a column sits in the file.
    columns = ", ".join(q(c) for c in sorted(spec.columns))
    return f"(hash({columns}) & 9223372036854775807)::BIGINT"


def observe(con: duckdb.DuckDBPyConnection, extract: Extract, spec: HistorySpec, name: str) -> None:
    """Register the extract's observations as relations ``<name>_v``, ``<name>_s``, ``<name>_e``
    (versions, sightings, delete events) and, for full/keys extracts, ``<name>_k`` (keys present).

    The extract is deduplicated once into ``<name>_all``; the others are views over it, so a
    1M-row full extract is copied once, not four times."""
    con.register(f"{name}_raw", extract.rows)
    keys = _keys(spec)
    if extract.load_type == "keys":
        # Only ever anti-joined against: duplicates do not matter, so no DISTINCT copy of 1M keys.
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT {keys} FROM {name}_raw")
        return
    modify = spec.modify_date_column
    m_expr = f"coalesce(CAST({q(modify)} AS TIMESTAMP), $t)" if modify else "$t"
    has_flag = DELETE_FLAG in extract.rows.column_names
    is_delete = q(DELETE_FLAG) if has_flag else "false"
    cols = ", ".join(q(c) for c in spec.columns)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name}_all AS
        SELECT DISTINCT {cols}, {m_expr} AS _m, {_content_hash(spec)} AS _hash, {is_delete} AS _del
        FROM {name}_raw""",
        {"t": extract.extracted_at},
    )
    con.unregister(f"{name}_raw")
    # Views cannot take parameters: the extract's time and file go in as escaped literals.
    t = f"TIMESTAMP '{extract.extracted_at.isoformat(sep=' ')}'"
    f = "'" + extract.file.replace("'", "''") + "'::VARCHAR"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_v AS
        SELECT {cols}, _m, _hash, {t} AS _t, {f} AS _file FROM {name}_all WHERE NOT _del"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_s AS
        SELECT DISTINCT {keys}, _m, _hash, {t} AS _t, {f} AS _file FROM {name}_all WHERE NOT _del"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name}_e AS
        SELECT DISTINCT {keys}, _m, {t} AS _t, {f} AS _file FROM {name}_all WHERE _del"""
    )
    if extract.load_type == "full":
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT DISTINCT {keys} FROM {name}_all WHERE NOT _del")


def _union(names: Sequence[str], empty: str) -> str:
    return " UNION ALL ".join(f"SELECT * FROM {n}" for n in names) if names else empty


def plan(
    state: pa.Table | object | None,
    extracts: Sequence[Extract],
    spec: HistorySpec,
    *,
    schema: pa.Schema | None = None,
    reread_keys: Callable[[str], pa.Table] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Plan:
    """Add ``extracts`` (already aligned to ``spec.columns``) to the observations in ``state``.

    ``state`` is an Arrow table or dataset with :func:`state_schema` (or None for none yet).
    ``schema`` types the data columns (default: the first data extract's).
    ``reread_keys(file)`` returns the keys of an already-applied full/keys extract; it is needed
    only when a batch reveals a key earlier than extracts applied before (out-of-order loads).
    """
    own = con is None
    con = con or connect()
    try:
        if schema is None:
            data = [e.rows for e in extracts if e.load_type != "keys"]
            if not data:
                raise ValueError("plan needs a schema when the batch holds only keys extracts")
            schema = data[0].select(list(spec.columns)).schema
        return _plan(con, state, extracts, spec, schema.empty_table().select(list(spec.columns)), reread_keys)
    finally:
        if own:
            con.close()


def _plan(con, state, extracts, spec: HistorySpec, proto: pa.Table, reread_keys) -> Plan:  # noqa: C901 - one pipeline
    keys = _keys(spec)
    cols = ", ".join(q(c) for c in spec.columns)
    con.register("proto", proto)
    # One relation per observation kind, `state_<kind>`. For the loader's Parquet view each kind
    # reads only its own files (binding a view over every file costs milliseconds per query).
    by_kind = isinstance(state, str)
    if state is None:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE state AS SELECT {cols}, NULL::VARCHAR AS _kind, NULL::TIMESTAMP AS _m,
            NULL::TIMESTAMP AS _t, NULL::BIGINT AS _hash, NULL::VARCHAR AS _file, NULL::VARCHAR AS _load_type FROM proto"""
        )
        missing: list[str] = []
    else:
        if by_kind:  # a relation already defined on `con`, with `<state>__<kind>` views (see scan.py)
            con.execute(f"CREATE OR REPLACE TEMP VIEW state_src AS SELECT * FROM {state}__version")
        else:
            con.register("state_src", state)
        present = {row[0] for row in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM state_src)").fetchall()}
        missing = [c for c in spec.columns if c not in present]
        if not by_kind:
            con.execute("CREATE OR REPLACE TEMP VIEW state AS SELECT * FROM state_src")
    for kind in KINDS:
        source = f"{state}__{kind}" if by_kind else f"(SELECT * FROM state WHERE _kind = '{kind}')"
        # Columns new in this batch are null in older observations; the typed empty `proto`
        # joined on false supplies them with the right types.
        extra = "".join(f", p.{q(c)}" for c in missing)
        join = " LEFT JOIN proto p ON false" if missing else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW state_{kind} AS SELECT s.*{extra} FROM {source} s{join}")
    con.execute("CREATE OR REPLACE TEMP VIEW state_deletion AS SELECT * FROM state_absent UNION ALL BY NAME SELECT * FROM state_event")

    names: list[str] = []
    for index, extract in enumerate(extracts):
        name = f"x{index}"
        observe(con, extract, spec, name)
        names.append(name)
    data_names = [n for n, e in zip(names, extracts, strict=True) if e.load_type != "keys"]
    presence = [(n, e) for n, e in zip(names, extracts, strict=True) if e.load_type in ("full", "keys")]

    empty_v = f"SELECT {cols}, NULL::TIMESTAMP AS _m, NULL::BIGINT AS _hash, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file FROM proto"
    empty_s = f"SELECT {keys}, NULL::TIMESTAMP AS _m, NULL::BIGINT AS _hash, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file FROM proto"
    empty_e = f"SELECT {keys}, NULL::TIMESTAMP AS _m, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file FROM proto"
    con.execute(f"CREATE OR REPLACE TEMP VIEW b_v AS {_union([n + '_v' for n in data_names], empty_v)}")  # read once
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_s AS {_union([n + '_s' for n in data_names], empty_s)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_e AS {_union([n + '_e' for n in data_names], empty_e)}")

    # First sighting per key, before and with this batch.
    con.execute(f"CREATE OR REPLACE TEMP TABLE bfirst AS SELECT {keys}, min(_t) AS _first FROM b_s GROUP BY ALL")
    # Keys' first sightings before this batch, for the keys the batch carries (a version row holds
    # its first sighting).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE known AS
        SELECT {_keys(spec, 'v')}, min(v._t) AS _first
        FROM (SELECT {keys}, _t FROM state_version) v SEMI JOIN bfirst b ON {_on(spec, 'v', 'b')}
        GROUP BY ALL"""
    )
    # Absences in this batch's full and keys extracts: keys seen (before or in the batch) before
    # the extract's time and missing from it. Anti-joining before deduplicating spares grouping
    # every known key.
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_a AS {empty_e}")
    if presence:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW seen AS
            SELECT {keys}, _t FROM state_version UNION ALL SELECT {keys}, _t FROM b_s"""
        )
    for name, extract in presence:
        con.execute(
            f"""INSERT INTO b_a SELECT DISTINCT {_keys(spec, 'a')}, $t::TIMESTAMP, $t::TIMESTAMP, $f::VARCHAR
            FROM (SELECT * FROM seen WHERE _t < $t) a ANTI JOIN {name}_k k ON {_on(spec, 'a', 'k')}""",
            {"t": extract.extracted_at, "f": extract.file},
        )
    # Keys seen earlier than before: extracts applied earlier may have missed them (out of order).
    batch_files = {e.file for e in extracts}
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE lowered AS SELECT {_keys(spec, 'b')}, b._first AS _new, k._first AS _old
        FROM bfirst b LEFT JOIN known k ON {_on(spec, 'b', 'k')} WHERE k._first IS NULL OR b._first < k._first"""
    )
    (lowest,) = con.execute("SELECT min(_new) FROM lowered").fetchall()[0]
    if lowest is not None:
        earlier = con.execute(
            """SELECT DISTINCT _file, _t FROM state_extract WHERE _load_type IN ('full', 'keys') AND _t > $low
            ORDER BY _t""",
            {"low": lowest},
        ).fetchall()
        for file, extracted_at in earlier:
            if file in batch_files:
                continue
            (count,) = con.execute(
                "SELECT count(*) FROM lowered WHERE _new < $t AND (_old IS NULL OR $t <= _old)", {"t": extracted_at}
            ).fetchall()[0]
            if not count:
                continue
            if reread_keys is None:
                raise RuntimeError(f"applied extract {file} must be re-read to place keys seen earlier, but no reader was given")
            con.register("reread", reread_keys(file))
            con.execute(
                f"""INSERT INTO b_a SELECT {_keys(spec, 'l')}, $t::TIMESTAMP, $t::TIMESTAMP, $f::VARCHAR
                FROM lowered l ANTI JOIN reread r ON {_on(spec, 'l', 'r')}
                WHERE l._new < $t AND (l._old IS NULL OR $t <= l._old)""",
                {"t": extracted_at, "f": file},
            )
            con.unregister("reread")

    # Versions the state does not hold yet (or holds with a later first sighting). Anti-joining
    # before picking the first sighting per version gives the same rows: a version's earliest
    # sighting survives the join exactly when any of its sightings does.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE newv AS
        SELECT b.* FROM b_v b
        ANTI JOIN (SELECT {keys}, _m, _hash, _t FROM state_version) s
        ON {_on(spec, 's', 'b', ['_m', '_hash'])} AND s._t <= b._t
        QUALIFY row_number() OVER (PARTITION BY {_keys(spec, 'b')}, b._m, b._hash ORDER BY b._t, b._file) = 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE delkeys AS
        SELECT DISTINCT {keys} FROM state_deletion
        UNION SELECT {keys} FROM b_a UNION SELECT {keys} FROM b_e"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE aff AS
        SELECT {keys} FROM newv
        UNION SELECT {_keys(spec, 's')} FROM b_s s SEMI JOIN delkeys d ON {_on(spec, 's', 'd')}
        UNION SELECT {keys} FROM b_a UNION SELECT {keys} FROM b_e"""
    )
    # The fold's inputs: every observation of the affected keys.
    def restricted(sql: str, alias: str) -> str:
        return f"SELECT {alias}.* FROM ({sql}) {alias} SEMI JOIN aff ON {_on(spec, alias, 'aff')}"

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE f_v AS
        SELECT z.* FROM (SELECT {cols}, _m, _hash, _t, _file FROM state_version) z
        SEMI JOIN aff ON {_on(spec, 'z', 'aff')}
        UNION ALL SELECT * FROM newv"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE f_d AS "
        + restricted(
            f"""SELECT {keys}, _m, _t, _file, _kind FROM state_deletion
            UNION ALL SELECT *, 'absent' FROM b_a UNION ALL SELECT *, 'event' FROM b_e""",
            "z",
        )
    )
    # The fold reads sightings only for keys with several versions or a deletion (a key with one
    # version and no deletion is that version, open-ended): fetch no others.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cplx AS
        SELECT {keys} FROM (SELECT DISTINCT {keys}, _m, _hash FROM f_v) GROUP BY ALL HAVING count(*) > 1
        UNION SELECT {keys} FROM f_d"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE f_s AS
        SELECT z.* FROM (SELECT {keys}, _m, _hash, _t, _file FROM state_sighting UNION ALL SELECT * FROM b_s) z
        SEMI JOIN cplx ON {_on(spec, 'z', 'cplx')}"""
    )
    history = fold(con, spec, "f_v", "f_s", "f_d")

    # New observations, in the state table's layout.
    extract_rows = pa.table(
        {
            "_file": pa.array([e.file for e in extracts], pa.string()),
            "_t": pa.array([e.extracted_at for e in extracts], pa.timestamp("us")),
            "_load_type": pa.array([e.load_type for e in extracts], pa.string()),
        }
    )
    con.register("extract_rows", extract_rows)
    new_state = con.sql(
        f"""
        SELECT {cols}, 'version' AS _kind, _m, _t, _hash, _file, NULL::VARCHAR AS _load_type FROM newv
        UNION ALL BY NAME SELECT {keys}, 'sighting' AS _kind, _m, _t, _hash, _file FROM b_s
        UNION ALL BY NAME SELECT {keys}, 'absent' AS _kind, _m, _t, _file FROM b_a
        UNION ALL BY NAME SELECT {keys}, 'event' AS _kind, _m, _t, _file FROM b_e
        UNION ALL BY NAME SELECT 'extract' AS _kind, _t, _file, _load_type FROM extract_rows
        """
    ).to_arrow_table()
    affected = con.sql("SELECT * FROM aff").to_arrow_table()
    (batch_keys,) = con.execute(f"SELECT count(*) FROM (SELECT {keys} FROM bfirst UNION SELECT {keys} FROM b_e)").fetchall()[0]
    new_state = new_state.select([c for c in list(spec.columns) + list(STATE_COLUMNS)])
    # The connection may live on (the loader diffs on it): free the batch's big temp tables.
    for table in [f"{n}_all" for n in data_names] + ["b_s", "known", "allfirst", "bfirst", "newv", "f_v", "f_s", "fv"]:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return Plan(new_state=new_state, history=history, affected=affected, batch_keys=batch_keys)


def fold(con: duckdb.DuckDBPyConnection, spec: HistorySpec, versions: str, sightings: str, deletions: str) -> pa.Table:
    """The history rows of every key in the given observation relations (see the module doc)."""
    k = _keys(spec)
    tracked = ", ".join(f"v.{q(c)}" for c in spec.tracked)
    state_hash = f"hash(e._del{', ' + tracked if tracked else ''})"
    data = ", ".join(f"v.{q(c)}" for c in spec.columns)
    # Most keys have one version and no deletion: their history is that version, open-ended.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fv AS
        SELECT * FROM {versions} QUALIFY row_number() OVER (PARTITION BY {k}, _m, _hash ORDER BY _t, _file) = 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fold_simple AS
        SELECT {k} FROM fv GROUP BY ALL HAVING count(*) = 1
        EXCEPT SELECT {k} FROM {deletions}"""
    )
    simple = f"""
    SELECT {data}, v._file AS lh_source_file, false AS lh_is_deleted, v._m AS lh_valid_from,
           TIMESTAMP '9999-12-31 00:00:00' AS lh_valid_to, true AS lh_is_current
    FROM fv v SEMI JOIN fold_simple fk ON {_on(spec, 'v', 'fk')}"""
    sql = f"""
    WITH
    cv AS (SELECT v.* FROM fv v ANTI JOIN fold_simple fk ON {_on(spec, 'v', 'fk')}),
    cs AS (SELECT s.* FROM {sightings} s ANTI JOIN fold_simple fk ON {_on(spec, 's', 'fk')}),
    fs AS (SELECT {k}, min(_t) AS _first FROM cv GROUP BY ALL),
    same_t AS (SELECT DISTINCT {k}, _t FROM cs),
    de AS (
        SELECT {_keys(spec, 'd')}, d._m AS _d, d._t AS _tobs, d._file
        FROM {deletions} d JOIN fs ON {_on(spec, 'd', 'fs')}
        ANTI JOIN same_t st ON {_on(spec, 'd', 'st')} AND st._t = d._t AND d._kind = 'absent'
        WHERE d._kind = 'event' OR fs._first < d._t
    ),
    se AS (
        SELECT {_keys(spec, 's')}, s._m, s._hash, s._t, s._file, max(x._d) AS _ld
        FROM cs s LEFT JOIN de x ON {_on(spec, 'x', 's')} AND x._tobs < s._t
        GROUP BY ALL
    ),
    re AS (
        SELECT {k}, CASE WHEN _ld IS NOT NULL AND _ld >= _m THEN _t ELSE _m END AS _eff, _m, _hash,
               min(_t) AS _t, arg_min(_file, _t) AS _file
        FROM se GROUP BY ALL
    ),
    ev AS (
        SELECT {k}, _eff, _m, _hash, _t, _file, 0 AS _ord FROM re
        UNION ALL
        SELECT {k}, _d, NULL::TIMESTAMP, NULL::BIGINT, _tobs, _file, 1 FROM de
    ),
    ev1 AS (
        SELECT * FROM ev
        QUALIFY row_number() OVER (PARTITION BY {k}, _eff ORDER BY _ord DESC, _m DESC NULLS LAST, _t DESC, _hash DESC, _file DESC) = 1
    ),
    ev1m AS (
        SELECT *, max(_m) OVER (PARTITION BY {k} ORDER BY _eff ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS _seen_m
        FROM ev1
    ),
    ev1k AS (SELECT * EXCLUDE (_seen_m) FROM ev1m WHERE _ord = 1 OR _seen_m IS NULL OR _m >= _seen_m),
    ev2 AS (
        SELECT *, _ord = 1 AS _del,
            last_value(CASE WHEN _ord = 0 THEN _m END IGNORE NULLS) OVER w AS _cm,
            last_value(CASE WHEN _ord = 0 THEN _hash END IGNORE NULLS) OVER w AS _ch
        FROM ev1k WINDOW w AS (PARTITION BY {k} ORDER BY _eff ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    ev3 AS (
        SELECT {_keys(spec, 'e')}, e._eff, e._del, e._file, e._cm, e._ch, {state_hash} AS _state
        FROM ev2 e JOIN cv v ON {_on(spec, 'v', 'e')} AND v._m = e._cm AND v._hash = e._ch
    ),
    ev4 AS (
        SELECT *, CASE WHEN _state IS NOT DISTINCT FROM lag(_state) OVER (PARTITION BY {k} ORDER BY _eff) THEN 0 ELSE 1 END AS _new
        FROM ev3
    ),
    ev5 AS (SELECT *, sum(_new) OVER (PARTITION BY {k} ORDER BY _eff ROWS UNBOUNDED PRECEDING) AS _grp FROM ev4),
    ev6 AS (
        SELECT *, first_value(_cm) OVER wi AS _pm, first_value(_ch) OVER wi AS _ph
        FROM ev5 WINDOW wi AS (PARTITION BY {k}, _grp ORDER BY _cm DESC, _eff DESC)
    ),
    isl AS (
        SELECT {k}, _grp, min(_eff) AS _from, bool_or(_del) AS _deleted, any_value(_pm) AS _pm, any_value(_ph) AS _ph,
               arg_min(_file, _eff) FILTER (WHERE _cm = _pm AND _ch = _ph) AS _src
        FROM ev6 GROUP BY ALL
    ),
    hist AS (SELECT *, lead(_from) OVER (PARTITION BY {k} ORDER BY _from) AS _next FROM isl)
    SELECT {data}, h._src AS lh_source_file, h._deleted AS lh_is_deleted, h._from AS lh_valid_from,
           coalesce(h._next - INTERVAL 1 MICROSECOND, TIMESTAMP '9999-12-31 00:00:00') AS lh_valid_to,
           h._next IS NULL AS lh_is_current
    FROM hist h JOIN cv v ON {_on(spec, 'v', 'h')} AND v._m = h._pm AND v._hash = h._ph
    UNION ALL
    {simple}
    """
    return con.sql(sql).to_arrow_table()


def build_history(extracts: Sequence[Extract], spec: HistorySpec) -> pa.Table:
    """The full SCD2 history of a set of extracts, from nothing (the reference semantics)."""
    return plan(None, extracts, spec).history


def current_rows(history: pa.Table) -> pa.Table:
    """SCD1 view of a history: the current version of each key, without validity columns."""
    import pyarrow.compute as pc

    current = history.filter(pc.equal(history.column("lh_is_current"), True))
    return current.drop_columns(["lh_valid_from", "lh_valid_to", "lh_is_current"])
