"""Keyed history (scd1/scd2) as a pure function of the set of extracts seen.

Why a function of the set: DESIGN.md requires that processing landing files or partitions in any
order, or twice, gives the same rows. A sequential merge cannot promise that once late-arriving
rows, out-of-order partitions and deletions mix, so the table is derived from *observations*.
What is stored (the hidden state table) grows with versions and deletions, not with extracts:

* ``version``  a distinct row content of a key, (key, ``_hash``), with its data columns, its modify
  date ``_m`` and the first extract that carried it (``_t``, ``_file``);
* ``sighting`` a delta extract that carried a version (key, ``_m``, ``_hash``, ``_t``, ``_file``), other
  than the version's first sighting, which the ``version`` row itself records;
* ``mark``     where a key's content in the full and keys extracts changes. The full and keys
  extracts, in time order, show each key as a set of versions (full), present (keys) or absent
  (a key seen before, missing). A mark starts a *run*: ``sighting`` marks (one row per version)
  cover every later full extract with the same versions and every keys extract holding the key;
  ``absent`` marks every later full or keys extract missing it; ``present`` marks keys extracts
  holding a key with no run of versions. A run lasts until the key's next mark, so a full extract
  that repeats yesterday's rows stores nothing. Extracts that arrive out of order may land inside
  a run: then the key's marks are rebuilt from its runs' members, and a ``reset`` mark (with the
  load's generation ``_gen``) supersedes the key's older marks;
* ``event``    an explicit delete event (delete condition) with its modify date ``_m``;
* ``extract``  a landing file already applied (``_file``, ``_t``, ``_load_type``).

The runs' members (which extracts a run covers) follow from the marks and the ``extract`` list, so
the sightings and absences of every extract can be recovered exactly; the fold below reads them
for the keys a batch touches, and only where they matter (a run of versions stands for its first
extract unless a deletion could make a later one re-open the key).

:func:`plan` adds a batch of extracts to the observations and returns the new observations plus
the recomputed history of every key the batch touches; :func:`fold` is the history itself, one
set-based DuckDB query (no per-row Python):

1. An absence at ``T`` deletes a key seen in an earlier extract and not seen in an extract at ``T``;
   a delete event deletes at its modify date.
2. A sighting starts its version at the modify date, unless a deletion observed before that
   extract is not earlier than the modify date: then the key *came back* at the extract's time.
   Such a come-back is dropped when a version with a later modify date already starts before it
   (the source moved on; modify dates never run backwards within a key's history).
3. Events are ordered by that time (a deletion after a row at the same instant); the state at an
   event is (deleted?, tracked attributes). A new version starts where the state changes; the
   other columns show the latest content within the version (updated in place), and its
   ``lh_source_file`` is the first extract that carried that content within the version.
4. ``lh_valid_to`` is the next version's start minus one microsecond, or 9999-12-31.

The daily case, one full extract later than every extract applied, goes a shorter way (see
``_Steps.split_unchanged``): one join of the extract's rows with the marks by (key, version) sets
aside the keys whose open run it repeats (they add no observation and their history stays), and
keys the state has never seen get their version, mark and history row directly; only changed and
missing keys, and keys with several rows or a delete event, go through the steps above. The result is the same by
construction and is tested against the full fold (``reference_history``).

SCD1 keeps the last version of each key. The loader (``load.py``) keeps the observations in a
hidden Delta table ``base/_state/<table>`` so they travel with the data and commit atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.engine.base.reader import DELETE_FLAG, Extract, repeated_keys
from medallion_assets.engine.base.scan import connect
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal, timestamp_literal

OPEN_END = datetime(9999, 12, 31)
OPEN_END_SQL = timestamp_literal(OPEN_END)
KINDS = ("version", "sighting", "mark", "event", "extract")
STATE_COLUMNS = ("_kind", "_m", "_t", "_hash", "_file", "_load_type", "_gen")
PRESENCE = ("full", "keys")  # the load types that show every key of the source
MARK_COLUMNS = ("_t", "_load_type", "_m", "_hash")  # what the steps read of a stored mark


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


@dataclass
class Plan:
    """The outcome of adding a batch: observations to store, and the affected keys' history."""

    new_state: pa.Table  # rows to append to the observation table
    history: pa.Table  # every version of every affected key (data columns + lh_source_file, lh_is_deleted, lh_valid_from/to, lh_is_current)
    affected: pa.Table  # the affected keys
    batch_keys: int  # distinct keys carried by the batch's data rows


@dataclass(frozen=True)
class StagedPlan:
    """The same outcome kept in DuckDB: the names of temp tables on the connection the plan ran on
    (they spill to disk past the memory budget), so the loader streams them into Delta."""

    new_state: str
    history: str
    affected: str
    batch_keys: int


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
        pa.field("_gen", pa.int64()),
    ]
    return pa.schema(fields)


def empty_state(data_schema: pa.Schema) -> pa.Table:
    return state_schema(data_schema).empty_table()


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


def _union(names: Sequence[str], empty: str) -> str:
    return " UNION ALL ".join(f"SELECT * FROM {n}" for n in names) if names else empty


def stage_plan(
    con: duckdb.DuckDBPyConnection,
    state: str | None,
    extracts: Sequence[Extract],
    spec: HistorySpec,
    *,
    schema: pa.Schema,
    reread_keys: Callable[[str], pa.Table] | None = None,
) -> StagedPlan:
    """:func:`plan` for the loader: the outcome stays in temp tables on ``con`` (see :class:`StagedPlan`)."""
    steps = _Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=reread_keys)
    return steps.run(state=state, proto=schema.empty_table().select(list(spec.columns)))


def plan(
    state: pa.Table | object | None,
    extracts: Sequence[Extract],
    spec: HistorySpec,
    *,
    schema: pa.Schema | None = None,
    reread_keys: Callable[[str], pa.Table] | None = None,
) -> Plan:
    """Add ``extracts`` (already aligned to ``spec.columns``) to the observations in ``state``.

    ``state`` is an Arrow table with :func:`state_schema`, or None for none yet. ``schema`` types
    the data columns (default: the first data extract's). ``reread_keys(file)`` returns the keys of
    an already-applied full/keys extract; it is needed only when a batch reveals a key earlier than
    extracts applied before (out-of-order loads). The outcome comes back as Arrow tables.
    """
    con = connect()
    try:
        if schema is None:
            data = [e.rows for e in extracts if e.load_type != "keys"]
            if not data:
                raise ValueError("plan needs a schema when the batch holds only keys extracts")
            schema = data[0].select(list(spec.columns)).schema
        staged = _Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=reread_keys).run(
            state=state, proto=schema.empty_table().select(list(spec.columns))
        )
        arrow = {name: con.sql(f"SELECT * FROM {name}").to_arrow_table() for name in (staged.new_state, staged.history, staged.affected)}
        return Plan(
            new_state=arrow[staged.new_state], history=arrow[staged.history], affected=arrow[staged.affected], batch_keys=staged.batch_keys
        )
    finally:
        con.close()


class _Steps:
    """The steps of :func:`plan`, each a method that defines temp relations on ``con``."""

    def __init__(
        self,
        *,
        con: duckdb.DuckDBPyConnection,
        spec: HistorySpec,
        extracts: list[Extract],
        reread_keys: Callable[[str], pa.Table] | None,
    ) -> None:
        self.con, self.spec, self.extracts, self.reread_keys = con, spec, extracts, reread_keys
        self.k = _keys(spec)
        self.cols = ", ".join(q(c) for c in spec.columns)
        self.names = [f"x{i}" for i in range(len(extracts))]

    def sql(self, text: str, params: dict | None = None) -> None:
        self.con.execute(text, params or {})

    def run(self, *, state: pa.Table | str | None, proto: pa.Table) -> StagedPlan:
        self.register_state(state=state, proto=proto)
        self.listed = [observe(self.con, extract, self.spec, name) for name, extract in zip(self.names, self.extracts, strict=True)]
        self.split_unchanged()
        self.batch_observations()
        self.batch_absences()
        self.earlier_absences()
        self.new_versions()
        self.batch_content()
        self.rebuild_out_of_order_marks()
        self.append_marks()
        self.affected_keys()
        self.fold_inputs()
        history = fold(self.con, self.spec, "f_v", "f_s", "f_d", extra=self.fresh_history(), into="plan_history")
        return self.result(history)

    # --- the daily full extract: set aside what it repeats ---------------------------------------

    def split_unchanged(self) -> None:
        """A batch of one full extract later than every applied extract (the daily case) mostly
        repeats what the state holds. A key with one row, not a deletion, never deleted, whose open
        run (its latest mark) is a run of that one version continues the run: it gets no version,
        mark or sighting and its history does not change, so it leaves the batch here (``quiet``).
        A key with one row that the state has never seen starts a version, a run and an open-ended
        history row, written directly (``fresh``). Only the rest goes through the steps below; the
        extract's full key list (``<name>_k``) still decides absences."""
        self.quiet, self.fresh, self.marked = 0, False, 0
        if len(self.extracts) != 1 or self.extracts[0].load_type != "full":
            return
        spec, k, con, name = self.spec, self.k, self.con, self.names[0]
        (latest,) = con.execute("SELECT max(_t) FROM state_extract").fetchall()[0]
        if latest is not None and latest >= self.extracts[0].extracted_at:
            return
        (known,) = con.execute("SELECT (SELECT count(*) FROM marks_old) + (SELECT count(*) FROM state_version)").fetchall()[0]
        if not known:
            self.split_first_load()
            return
        self.sql(f"CREATE OR REPLACE TEMP TABLE {name}_keys AS SELECT {k} FROM {name}_all WHERE NOT _del")
        self.sql(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT {k} FROM {name}_keys")
        # Few keys have several rows in the extract or several marks: find those, then match each
        # row against the marks by (key, version) in one pass; no per-key table of 1M rows is built.
        self.sql(f"CREATE OR REPLACE TEMP TABLE x_multi AS {_several_rows(spec, name, listed=self.listed[0])}")
        # Keys with several marks: their latest instant, and whether they were ever absent.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE m_multi AS SELECT {k}, max(_t) AS _t, bool_or(_load_type = 'absent') AS _absent
            FROM marks_old GROUP BY ALL HAVING count(*) > 1"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE x_same AS
            SELECT {_keys(spec, "x")}, x._hash, EXISTS (
                SELECT 1 FROM marks_old m WHERE {_on(spec, "m", "x", ["_hash"])} AND m._load_type = 'sighting') AS _same
            FROM {name}_all x"""
        )
        # A key with several marks continues its run when the marks at its latest instant are that
        # one version and it was never absent (a join and a hash aggregate, no window sort).
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE open_runs AS
            SELECT {_keys(spec, "m")}, min(m._hash) AS _lo, max(m._hash) AS _hi, bool_and(m._load_type = 'sighting') AS _seen,
                   any_value(l._absent) AS _absent
            FROM marks_old m JOIN m_multi l ON {_on(spec, "m", "l", ["_t"])}
            GROUP BY {_keys(spec, "m")}"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE split AS
            SELECT {_keys(spec, "x")}, x._same AND (mm.{q(spec.keys[0])} IS NULL
                OR coalesce(o._seen AND o._lo = x._hash AND o._hi = x._hash AND NOT o._absent, false)) AS _quiet
            FROM x_same x LEFT JOIN m_multi mm ON {_on(spec, "x", "mm")} LEFT JOIN open_runs o ON {_on(spec, "x", "o")}
            ANTI JOIN x_multi xm ON {_on(spec, "x", "xm")}
            ANTI JOIN (SELECT {k} FROM state_event) e ON {_on(spec, "x", "e")}"""
        )
        # Never seen: no mark, no version (a key seen only in delta extracts has versions), no event.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE fresh_keys AS
            SELECT c.* FROM (SELECT {k} FROM split WHERE NOT _quiet) c ANTI JOIN (
                SELECT DISTINCT {k} FROM (SELECT {k} FROM marks_old UNION ALL SELECT {k} FROM state_version) z
                SEMI JOIN (SELECT {k} FROM split WHERE NOT _quiet) c USING ({k})) z USING ({k})"""
        )
        counts = f"SELECT (SELECT count(*) FROM split WHERE _quiet), (SELECT count(*) FROM {name}_all)"
        (self.quiet, rows) = con.execute(counts).fetchall()[0]
        (fresh,) = con.execute("SELECT count(*) FROM fresh_keys").fetchall()[0]
        self.fresh = fresh > 0
        if fresh == rows:  # a first load: every row is fresh
            self.sql(f"ALTER TABLE {name}_all RENAME TO fresh")
            self.sql(f"CREATE OR REPLACE TEMP TABLE {name}_all AS SELECT * FROM fresh LIMIT 0")
            return
        self.sql(f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT a.* FROM {name}_all a SEMI JOIN fresh_keys f USING ({k})")
        self.split_marked()
        if self.quiet or self.fresh or self.marked:
            self.sql(
                f"""CREATE OR REPLACE TEMP TABLE {name}_all AS SELECT a.* FROM {name}_all a SEMI JOIN (
                    SELECT {k} FROM split WHERE NOT _quiet EXCEPT SELECT {k} FROM fresh_keys EXCEPT SELECT {k} FROM marked
                    UNION ALL SELECT {k} FROM x_multi UNION ALL SELECT {k} FROM state_event) s USING ({k})"""
            )

    def split_marked(self) -> None:
        """Of the keys left, those whose row is a version the key already has, with a known modify
        date, and that were never deleted, only start a new run (``marked``): the extract's sighting
        repeats one the fold already holds (same version, same modify date, not after a deletion),
        so their history stays; they get the mark and skip the fold. This is the weekly full
        extract after daily deltas: the deltas brought the versions, the full extract confirms them."""
        spec, k, name = self.spec, self.k, self.names[0]
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE marked AS
            SELECT a.* FROM (SELECT * FROM {name}_all WHERE _mt IS NOT NULL AND NOT _del) a
            SEMI JOIN (SELECT {k} FROM split WHERE NOT _quiet EXCEPT SELECT {k} FROM fresh_keys) s USING ({k})
            SEMI JOIN (SELECT {k}, _hash FROM state_version) v ON {_on(spec, "a", "v", ["_hash"])}
            ANTI JOIN (SELECT {k} FROM marks_old WHERE _load_type = 'absent') d ON {_on(spec, "a", "d")}"""
        )
        (count,) = self.con.execute("SELECT count(*) FROM marked").fetchall()[0]
        self.marked = count

    def split_first_load(self) -> None:
        """With no version and no mark stored, every key with one row, not a deletion, nor in a
        delete event, is fresh: the extract's table is taken over as it is, without a copy."""
        spec, k, name = self.spec, self.k, self.names[0]
        several = _several_rows(spec, name, listed=self.listed[0])
        self.sql(f"CREATE OR REPLACE TEMP TABLE x_multi AS {several} UNION SELECT {k} FROM state_event")
        (rest,) = self.con.execute("SELECT count(*) FROM x_multi").fetchall()[0]
        if rest:
            self.sql(f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT a.* FROM {name}_all a ANTI JOIN x_multi USING ({k})")
            self.sql(f"CREATE OR REPLACE TEMP TABLE {name}_all AS SELECT a.* FROM {name}_all a SEMI JOIN x_multi USING ({k})")
        else:
            self.sql(f"ALTER TABLE {name}_all RENAME TO fresh")
            self.sql(f"CREATE OR REPLACE TEMP TABLE {name}_all AS SELECT * FROM fresh LIMIT 0")
        self.sql(f"CREATE OR REPLACE TEMP VIEW {name}_k AS SELECT {k} FROM fresh UNION ALL SELECT {k} FROM {name}_all WHERE NOT _del")
        (fresh,) = self.con.execute("SELECT count(*) FROM fresh").fetchall()[0]
        self.fresh = fresh > 0

    def fresh_history(self) -> str | None:
        """The history of the fresh keys: their one version, open-ended from its modify date."""
        if not self.fresh:
            return None
        file = string_literal(self.extracts[0].file) + "::VARCHAR"
        return f"""SELECT {self.cols}, {file} AS lh_source_file, false AS lh_is_deleted, _m AS lh_valid_from,
            {OPEN_END_SQL} AS lh_valid_to, true AS lh_is_current FROM fresh"""

    # --- inputs ------------------------------------------------------------------------------

    def register_state(self, *, state: pa.Table | str | None, proto: pa.Table) -> None:
        """``state_<kind>`` per observation kind; columns new in this batch are null in older rows."""
        con, cols = self.con, self.cols
        con.register("proto", proto)
        tail = ", NULL::VARCHAR AS _kind, NULL::TIMESTAMP AS _m, NULL::TIMESTAMP AS _t, NULL::BIGINT AS _hash, "
        tail += "NULL::VARCHAR AS _file, NULL::VARCHAR AS _load_type, NULL::BIGINT AS _gen"
        missing: list[str] = []
        by_kind = isinstance(state, str)
        if state is None:
            self.sql(f"CREATE OR REPLACE TEMP TABLE state AS SELECT {cols}{tail} FROM proto")
        else:
            if by_kind:  # a relation already defined on `con`, with `<state>__<kind>` views (see scan.py)
                self.sql(f"CREATE OR REPLACE TEMP VIEW state_src AS SELECT * FROM {state}__version")
            else:
                con.register("state_src", state)
            present = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE SELECT * FROM state_src)").fetchall()}
            _refuse_old_state(present)
            missing = [c for c in self.spec.columns if c not in present]
            if not by_kind:
                self.sql("CREATE OR REPLACE TEMP VIEW state AS SELECT * FROM state_src")
        extra = "".join(f", p.{q(c)}" for c in missing)
        join = " LEFT JOIN proto p ON false" if missing else ""
        for kind in KINDS:
            source = f"{state}__{kind}" if by_kind else f"(SELECT * FROM state WHERE _kind = {string_literal(kind)})"
            self.sql(f"CREATE OR REPLACE TEMP VIEW state_{kind} AS SELECT s.*{extra} FROM {source} s{join}")
        (self.generation,) = con.execute("SELECT count(*) + 1 FROM state_extract").fetchall()[0]
        self.sql(
            "CREATE OR REPLACE TEMP TABLE old_extracts AS SELECT DISTINCT _t, _file, _load_type FROM state_extract "
            f"WHERE _load_type IN {PRESENCE}"
        )
        (self.old_max,) = con.execute("SELECT max(_t) FROM old_extracts").fetchall()[0]  # the latest full/keys extract
        # Without their file names (most of their bytes): only the fold's runs need those, for the
        # affected keys (see fold_inputs).
        self.sql(f"CREATE OR REPLACE TEMP TABLE marks_old AS {self.marks_in_effect(MARK_COLUMNS)}")

    def marks_in_effect(self, columns: tuple[str, ...], keys: str | None = None) -> str:
        """The stored marks in effect, of every key or of the keys in relation ``keys``: a key's
        ``reset`` mark supersedes its marks of earlier generations."""
        spec, k = self.spec, self.k
        marks = "state_mark" if keys is None else f"(SELECT * FROM state_mark SEMI JOIN {keys} USING ({k}))"
        return f"""SELECT {_keys(spec, 'm')}, {', '.join('m.' + c for c in columns)}
            FROM {marks} m LEFT JOIN (
                SELECT {k}, max(_gen) AS _g FROM {marks} WHERE _load_type = 'reset' GROUP BY ALL) r ON {_on(spec, 'm', 'r')}
            WHERE m._load_type <> 'reset' AND (r._g IS NULL OR m._gen >= r._g)"""

    def batch_observations(self) -> None:
        """``b_v`` versions, ``b_s`` sightings (``b_ds`` of delta extracts), ``b_e`` delete events."""
        k, cols = self.k, self.cols
        data = [n for n, e in zip(self.names, self.extracts, strict=True) if e.load_type != "keys"]
        deltas = [n for n, e in zip(self.names, self.extracts, strict=True) if e.load_type == "delta"]
        empty_v = f"SELECT {cols}, NULL::TIMESTAMP AS _m, NULL::BIGINT AS _hash, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file FROM proto"
        empty_s = (
            f"SELECT {k}, NULL::TIMESTAMP AS _m, NULL::BIGINT AS _hash, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file, "
            "NULL::TIMESTAMP AS _mt FROM proto"
        )
        empty_e = f"SELECT {k}, NULL::TIMESTAMP AS _m, NULL::TIMESTAMP AS _t, NULL::VARCHAR AS _file FROM proto"
        self.empty_e = empty_e
        self.sql(f"CREATE OR REPLACE TEMP VIEW b_v AS {_union([n + '_v' for n in data], empty_v)}")  # read once
        self.sql(f"CREATE OR REPLACE TEMP VIEW b_s AS {_union([n + '_s' for n in data], empty_s)}")
        self.sql(
            f"CREATE OR REPLACE TEMP TABLE b_ds AS SELECT * EXCLUDE (_mt) FROM ({_union([n + '_s' for n in deltas], empty_s)})"
        )
        self.sql(f"CREATE OR REPLACE TEMP TABLE b_e AS {_union([n + '_e' for n in data], empty_e)}")
        self.sql(f"CREATE OR REPLACE TEMP TABLE bfirst AS SELECT {k}, min(_t) AS _first FROM b_s GROUP BY ALL")

    def batch_absences(self) -> None:
        """``b_a``: keys seen (before or in the batch) before a full/keys extract and missing from it.
        Anti-joining before deduplicating spares grouping every known key."""
        k, spec = self.k, self.spec
        self.sql(f"CREATE OR REPLACE TEMP TABLE b_a AS {self.empty_e}")
        presence = [(n, e) for n, e in zip(self.names, self.extracts, strict=True) if e.load_type in PRESENCE]
        if not presence:
            return
        self.sql(
            f"CREATE OR REPLACE TEMP VIEW seen AS SELECT {k}, _t FROM state_version UNION ALL SELECT {k}, _t FROM b_s"
        )
        for name, extract in presence:
            self.sql(
                f"""INSERT INTO b_a SELECT DISTINCT {_keys(spec, "a")}, $t::TIMESTAMP, $t::TIMESTAMP, $f::VARCHAR
                FROM (SELECT * FROM seen WHERE _t < $t) a ANTI JOIN {name}_k k ON {_on(spec, "a", "k")}""",
                {"t": extract.extracted_at, "f": extract.file},
            )

    def earlier_absences(self) -> None:
        """``b_la``: keys the batch shows earlier than any extract applied before were missing from
        the full/keys extracts applied in between (out-of-order loads re-read those files)."""
        spec, k = self.spec, self.k
        self.sql(f"CREATE OR REPLACE TEMP TABLE b_la AS {self.empty_e}")
        self.sql(f"CREATE OR REPLACE TEMP TABLE b_lp AS {self.empty_e}")  # present in a keys extract
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE known AS
            SELECT {_keys(spec, "v")}, min(v._t) AS _first
            FROM (SELECT {k}, _t FROM state_version) v SEMI JOIN bfirst b ON {_on(spec, "v", "b")}
            GROUP BY ALL"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE lowered AS SELECT {_keys(spec, "b")}, b._first AS _new, k._first AS _old
            FROM bfirst b LEFT JOIN known k ON {_on(spec, "b", "k")} WHERE k._first IS NULL OR b._first < k._first"""
        )
        (lowest,) = self.con.execute("SELECT min(_new) FROM lowered").fetchall()[0]
        if lowest is None:
            return
        earlier = self.con.execute(
            "SELECT DISTINCT _file, _t, _load_type FROM old_extracts WHERE _t > $low ORDER BY _t", {"low": lowest}
        ).fetchall()
        batch_files = {e.file for e in self.extracts}
        for file, extracted_at, load_type in earlier:
            if file in batch_files:
                continue
            (count,) = self.con.execute(
                "SELECT count(*) FROM lowered WHERE _new < $t AND (_old IS NULL OR $t <= _old)", {"t": extracted_at}
            ).fetchall()[0]
            if not count:
                continue
            if self.reread_keys is None:
                raise RuntimeError(
                    f"applied extract {file} must be re-read to place keys seen earlier, but no reader was given"
                )
            self.con.register("reread", self.reread_keys(file))
            self.sql(
                f"""INSERT INTO b_la SELECT {_keys(spec, "l")}, $t::TIMESTAMP, $t::TIMESTAMP, $f::VARCHAR
                FROM lowered l ANTI JOIN reread r ON {_on(spec, "l", "r")}
                WHERE l._new < $t AND (l._old IS NULL OR $t <= l._old)""",
                {"t": extracted_at, "f": file},
            )
            if load_type == "keys":  # holding the key ends a run of absences
                self.sql(
                    f"""INSERT INTO b_lp SELECT {_keys(spec, "l")}, $t::TIMESTAMP, $t::TIMESTAMP, $f::VARCHAR
                    FROM lowered l SEMI JOIN reread r ON {_on(spec, "l", "r")}
                    WHERE l._new < $t AND (l._old IS NULL OR $t <= l._old)""",
                    {"t": extracted_at, "f": file},
                )
            self.con.unregister("reread")

    def new_versions(self) -> None:
        """``newv``: versions (key, content) the state does not hold yet, or holds with a later first
        sighting. Anti-joining before picking the first sighting per version gives the same rows: a
        version's earliest sighting survives the join exactly when any of its sightings does."""
        spec, k = self.spec, self.k
        # One data extract holds each version once (its rows are distinct): nothing to pick from.
        several = sum(e.load_type != "keys" for e in self.extracts) > 1
        first = (
            f"QUALIFY row_number() OVER (PARTITION BY {_keys(spec, 'b')}, b._hash ORDER BY b._t, b._file) = 1"
            if several
            else ""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE newv AS
            SELECT b.* FROM b_v b
            ANTI JOIN (SELECT {k}, _hash, _t FROM state_version) s ON {_on(spec, "s", "b", ["_hash"])} AND s._t <= b._t
            {first}"""
        )

    # --- marks -------------------------------------------------------------------------------

    def batch_content(self) -> None:
        """``b_c``: per key and full/keys extract time, what the batch shows: the versions of a full
        extract (``sighting``), presence in a keys extract (``present``) or an absence."""
        k = self.k
        (rereads,) = self.con.execute("SELECT (SELECT count(*) FROM b_la) + (SELECT count(*) FROM b_lp)").fetchall()[0]
        self.rereads = rereads
        # Re-read files (``_reread``) are facts about an applied extract: they override what a run
        # claimed for it (a run of a key not seen yet may cover keys extracts that missed it).
        absent, present = (
            "'absent' AS _type, NULL::TIMESTAMP AS _m, NULL::BIGINT AS _hash",
            "'present', NULL::TIMESTAMP, NULL::BIGINT",
        )
        parts = [
            f"SELECT {k}, _t, _file, {absent}, false AS _reread FROM b_a",
            f"SELECT {k}, _t, _file, {absent}, true FROM b_la",
            f"SELECT {k}, _t, _file, {present}, true FROM b_lp",
        ]
        for name, extract in zip(self.names, self.extracts, strict=True):
            t = timestamp_literal(extract.extracted_at)
            f = string_literal(extract.file)
            if extract.load_type == "full":
                parts.append(f"SELECT {k}, {t}, {f}, 'sighting', _mt, _hash, false FROM {name}_all WHERE NOT _del")
            elif extract.load_type == "keys":
                parts.append(f"SELECT DISTINCT {k}, {t}, {f}, {present}, false FROM {self.keys_to_mark(name, extract)}")
        # At one instant a full extract's versions win over presence, presence over an absence. With
        # one full/keys extract and nothing re-read, no key has two contents at one instant.
        several = rereads or sum(e.load_type in PRESENCE for e in self.extracts) > 1
        pick = f"QUALIFY rank() OVER (PARTITION BY {k}, _t ORDER BY {_TYPE_RANK}) = 1" if several else ""
        self.sql(f"CREATE OR REPLACE TEMP TABLE b_c AS SELECT * FROM ({' UNION ALL '.join(parts)}) {pick}")
        self.sql(_groups_sql("b_cg", "b_c", k))
        # Only the batch's keys are ever looked up in the marks' groups.
        self.sql(
            f"CREATE OR REPLACE TEMP VIEW marks_b AS SELECT m.* FROM marks_old m SEMI JOIN (SELECT DISTINCT {k} FROM b_c) c USING ({k})"
        )
        self.sql(_groups_sql("marks_g", "marks_b", k))

    def keys_to_mark(self, name: str, extract: Extract) -> str:
        """The keys of a keys extract whose presence may change their run. When the batch's only
        full/keys extract is this one, later than every applied one, and nothing was re-read, a
        key whose run in effect is a run of versions or of presence just continues it (the daily
        keys extract that confirms a million keys): only keys with no mark yet, or whose run in
        effect is an absence, can start a run. Otherwise every key of the extract."""
        spec, k = self.spec, self.k
        presence = [e for e in self.extracts if e.load_type in PRESENCE]
        later = self.old_max is None or self.old_max < extract.extracted_at
        if self.rereads or len(presence) != 1 or presence[0] is not extract or not later:
            return f"{name}_k"
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE k_marked AS
            WITH absent AS (
                SELECT {k} FROM marks_old SEMI JOIN (SELECT {k} FROM marks_old WHERE _load_type = 'absent') a USING ({k})
                GROUP BY ALL HAVING arg_max(_load_type, _t) = 'absent')
            SELECT {_keys(spec, "x")} FROM {name}_k x ANTI JOIN marks_old m ON {_on(spec, "x", "m")}
            UNION ALL SELECT {_keys(spec, "x")} FROM {name}_k x SEMI JOIN absent a ON {_on(spec, "x", "a")}"""
        )
        return "k_marked"

    def rebuild_out_of_order_marks(self) -> None:
        """Keys whose content changes at an instant before an extract applied earlier (or that the
        batch places earlier than before) get their marks rebuilt: ``x_keys``, ``x_marks``."""
        spec, k = self.spec, self.k
        self.sql(f"CREATE OR REPLACE TEMP TABLE x_keys AS SELECT {k} FROM b_la UNION ALL SELECT {k} FROM b_lp")
        if self.old_max is not None:
            self.sql(
                f"""INSERT INTO x_keys SELECT {_keys(spec, "c")} FROM (SELECT * FROM b_cg WHERE _t <= $max) c
                ASOF LEFT JOIN marks_g g ON {_on(spec, "c", "g")} AND c._t > g._t
                WHERE NOT {_compatible("c", "g")}""",
                {"max": self.old_max},
            )
        self.sql(f"CREATE OR REPLACE TEMP TABLE x_keys AS SELECT DISTINCT {k} FROM x_keys")
        self.sql("CREATE OR REPLACE TEMP TABLE x_marks AS SELECT * FROM b_c WHERE false")
        (count,) = self.con.execute("SELECT count(*) FROM x_keys").fetchall()[0]
        if not count:
            return
        # The members of the keys' runs so far, then the batch's content; runs from the merged sequence.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE x_seq AS
            SELECT * FROM (
                SELECT {_keys(spec, "m")}, e._t, e._file,
                       CASE WHEN m._load_type = 'sighting' AND e._load_type = 'keys' THEN 'present' ELSE m._load_type END AS _type,
                       CASE WHEN e._load_type = 'full' THEN m._m END AS _m, CASE WHEN e._load_type = 'full' THEN m._hash END AS _hash,
                       false AS _reread
                FROM {_spans("marks_old", "x_keys", spec)} m
                JOIN old_extracts e ON e._t >= m._t AND (m._next IS NULL OR e._t < m._next)
                    AND (m._load_type = 'absent' OR (m._load_type = 'sighting') OR e._load_type = 'keys')
                UNION ALL SELECT c.* FROM b_c c SEMI JOIN x_keys x ON {_on(spec, "c", "x")})
            QUALIFY rank() OVER (PARTITION BY {k}, _t ORDER BY {_TYPE_RANK}) = 1"""
        )
        self.sql(_groups_sql("x_g", "x_seq", k))
        # A keys extract holding the key continues a run of versions; anything else starts its own.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE x_runs AS
            WITH d AS (
                SELECT *, last_value(CASE WHEN _type <> 'present' THEN {{'type': _type, 'cid': _cid}} END IGNORE NULLS)
                    OVER (PARTITION BY {k} ORDER BY _t ROWS UNBOUNDED PRECEDING) AS _def
                FROM x_g),
            r AS (
                SELECT *, CASE WHEN _type <> 'present' THEN {{'type': _type, 'cid': _cid}}
                               WHEN _def.type = 'sighting' THEN _def ELSE {{'type': 'present', 'cid': NULL::BIGINT}} END AS _run
                FROM d)
            SELECT {k}, _t FROM r
            QUALIFY _run IS DISTINCT FROM lag(_run) OVER (PARTITION BY {k} ORDER BY _t)"""
        )
        # A run that continues a run of versions through keys extracts has no row of its own.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE x_marks AS
            SELECT DISTINCT s.* FROM x_seq s SEMI JOIN x_runs r ON {_on(spec, "s", "r", ["_t"])}"""
        )

    def append_marks(self) -> None:
        """``new_marks``: for the other keys, a mark wherever the batch shows a content that differs
        from the run in effect before it (the batch's instants in time order)."""
        spec = self.spec
        self.sql("CREATE OR REPLACE TEMP TABLE new_marks AS SELECT * FROM x_marks")
        instants = [r[0] for r in self.con.execute("SELECT DISTINCT _t FROM b_cg ORDER BY _t").fetchall()]
        for instant in instants:
            if self.old_max is not None and instant <= self.old_max:
                continue  # before an applied extract: a change there made the key an x_key
            self.sql(
                f"""CREATE OR REPLACE TEMP TABLE step AS
                SELECT {_keys(spec, "c")} FROM (SELECT * FROM b_cg WHERE _t = $t) c
                ANTI JOIN x_keys x ON {_on(spec, "c", "x")}
                ASOF LEFT JOIN marks_g g ON {_on(spec, "c", "g")} AND c._t > g._t
                WHERE NOT {_compatible("c", "g")}""",
                {"t": instant},
            )
            self.sql(
                f"""INSERT INTO new_marks SELECT c.* FROM (SELECT * FROM b_c WHERE _t = $t) c
                SEMI JOIN step s ON {_on(spec, "c", "s")}""",
                {"t": instant},
            )
            self.sql(
                f"""INSERT INTO marks_g SELECT g.* FROM (SELECT * FROM b_cg WHERE _t = $t) g
                SEMI JOIN step s ON {_on(spec, "g", "s")}""",
                {"t": instant},
            )

    # --- the fold's inputs --------------------------------------------------------------------

    def affected_keys(self) -> None:
        """``aff``: keys with a new version, a new mark, a delete event, or a sighting of a key that
        was ever deleted (a sighting after a deletion can re-open it)."""
        spec, k = self.spec, self.k
        self.sql(
            f"""CREATE OR REPLACE TEMP VIEW live_marks AS
            SELECT m.* FROM marks_old m ANTI JOIN x_keys x ON {_on(spec, "m", "x")}
            UNION ALL SELECT {k}, _t, _type, _m, _hash FROM new_marks"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE deleted AS
            SELECT DISTINCT {k} FROM (
                SELECT {k} FROM state_event UNION ALL SELECT {k} FROM b_e
                UNION ALL SELECT {k} FROM live_marks WHERE _load_type = 'absent')"""
        )
        # An absence that continues a run of absences matters when a sighting, a version or a delete
        # event of the key lies after the run's start: it deletes the key again after that.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE live_absent AS SELECT m.* FROM live_marks m
            SEMI JOIN (SELECT DISTINCT {k} FROM b_cg WHERE _type = 'absent') a ON {_on(spec, "m", "a")}"""
        )
        self.sql(_groups_sql("live_g", "live_absent", k))
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE absent_again AS
            WITH probe AS (
                SELECT {k}, max(greatest(_t, _m)) AS _p FROM (
                    SELECT {k}, _t, _m FROM state_sighting UNION ALL SELECT {k}, _t, _m FROM b_ds
                    UNION ALL SELECT {k}, _t, _m FROM state_event UNION ALL SELECT {k}, _t, _m FROM b_e
                    UNION ALL SELECT {k}, _t, _m FROM state_version UNION ALL SELECT {k}, _t, _m FROM newv) z
                SEMI JOIN (SELECT {k} FROM b_cg WHERE _type = 'absent') a USING ({k})
                GROUP BY ALL)
            SELECT {_keys(spec, "c")} FROM (SELECT * FROM b_cg WHERE _type = 'absent') c
            ASOF JOIN live_g g ON {_on(spec, "c", "g")} AND c._t >= g._t
            JOIN probe p ON {_on(spec, "c", "p")} AND p._p > g._t"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE aff AS
            SELECT {k} FROM newv UNION SELECT {k} FROM new_marks UNION SELECT {k} FROM b_e UNION SELECT {k} FROM x_keys
            UNION SELECT {k} FROM absent_again
            UNION SELECT {_keys(spec, "s")} FROM b_s s SEMI JOIN deleted d ON {_on(spec, "s", "d")}"""
        )

    def fold_inputs(self) -> None:
        """``f_v``, ``f_s``, ``f_d``: every observation of the affected keys that the fold needs.
        A run of versions stands for its first extract when its modify dates are known and the key
        was never deleted; otherwise (and for runs of absences) every member extract counts."""
        spec, k, cols = self.spec, self.k, self.cols
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE f_v AS
            SELECT z.* FROM (SELECT {cols}, _m, _hash, _t, _file FROM state_version) z SEMI JOIN aff ON {_on(spec, "z", "aff")}
            UNION ALL SELECT * FROM newv"""
        )
        batch_rows = ", ".join(
            f"({timestamp_literal(e.extracted_at)}, {string_literal(e.file)}, {string_literal(e.load_type)})"
            for e in self.extracts
            if e.load_type in PRESENCE
        )
        batch_extracts = f" UNION SELECT * FROM (VALUES {batch_rows}) v(_t, _file, _load_type)" if batch_rows else ""
        self.sql(f"CREATE OR REPLACE TEMP TABLE all_extracts AS SELECT * FROM old_extracts{batch_extracts}")
        # The live marks of the affected keys, with the file of each mark.
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE aff_marks AS
            SELECT m.* FROM ({self.marks_in_effect(MARK_COLUMNS + ("_file",), keys="aff")}) m
                ANTI JOIN x_keys x ON {_on(spec, "m", "x")}
            UNION ALL SELECT {_keys(spec, "n")}, n._t, n._type, n._m, n._hash, n._file FROM new_marks n
                SEMI JOIN aff ON {_on(spec, "n", "aff")}"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE aff_runs AS
            SELECT r.*, d.{q(spec.keys[0])} IS NOT NULL AS _deleted
            FROM {_spans("aff_marks", "aff", spec)} r LEFT JOIN deleted d ON {_on(spec, "r", "d")}"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE f_s AS
            SELECT z.* FROM (SELECT {k}, _m, _hash, _t, _file FROM state_sighting UNION ALL SELECT * FROM b_ds) z
                SEMI JOIN aff ON {_on(spec, "z", "aff")}
            UNION ALL SELECT {k}, _m, _hash, _t, _file FROM f_v
            UNION ALL SELECT {k}, _m, _hash, _t, _file FROM aff_runs
                WHERE _load_type = 'sighting' AND _m IS NOT NULL AND NOT _deleted
            UNION ALL SELECT {_keys(spec, "r")}, coalesce(r._m, e._t), r._hash, e._t, e._file FROM aff_runs r
                JOIN all_extracts e ON e._load_type = 'full' AND e._t >= r._t AND (r._next IS NULL OR e._t < r._next)
                WHERE r._load_type = 'sighting' AND (r._m IS NULL OR r._deleted)"""
        )
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE f_d AS
            SELECT z.*, 'event' AS _kind FROM (SELECT {k}, _m, _t, _file FROM state_event UNION ALL SELECT * FROM b_e) z
                SEMI JOIN aff ON {_on(spec, "z", "aff")}
            UNION ALL SELECT {_keys(spec, "r")}, e._t, e._t, e._file, 'absent' FROM aff_runs r
                JOIN all_extracts e ON e._t >= r._t AND (r._next IS NULL OR e._t < r._next)
                WHERE r._load_type = 'absent'"""
        )

    def result(self, history: str) -> StagedPlan:
        spec, k, cols, con = self.spec, self.k, self.cols, self.con
        extract_rows = pa.table(
            {
                "_file": pa.array([e.file for e in self.extracts], pa.string()),
                "_t": pa.array([e.extracted_at for e in self.extracts], pa.timestamp("us")),
                "_load_type": pa.array([e.load_type for e in self.extracts], pa.string()),
            }
        )
        con.register("extract_rows", extract_rows)
        latest = timestamp_literal(max(e.extracted_at for e in self.extracts))
        # Rows set aside by split_unchanged get their state directly: fresh keys a version and a
        # mark, marked keys a mark.
        direct = ""
        t, f = timestamp_literal(self.extracts[0].extracted_at), string_literal(self.extracts[0].file) + "::VARCHAR"
        if self.fresh:
            direct += f"""
            UNION ALL BY NAME SELECT {cols}, 'version' AS _kind, _m, {t} AS _t, _hash, {f} AS _file FROM fresh"""
        for rows in ("fresh",) * bool(self.fresh) + ("marked",) * bool(self.marked):
            direct += f"""
            UNION ALL BY NAME SELECT {k}, 'mark' AS _kind, _mt AS _m, {t} AS _t, _hash, {f} AS _file,
                'sighting' AS _load_type FROM {rows}"""
        order = ", ".join([q(c) for c in spec.columns] + list(STATE_COLUMNS[:-1]))
        self.sql(
            f"""CREATE OR REPLACE TEMP TABLE plan_new_state AS SELECT {order}, {int(self.generation)}::BIGINT AS _gen FROM (
            SELECT {cols}, 'version' AS _kind, _m, _t, _hash, _file FROM newv{direct}
            UNION ALL BY NAME SELECT {_keys(spec, "s")}, 'sighting' AS _kind, s._m, s._t, s._hash, s._file FROM b_ds s
                ANTI JOIN newv v ON {_on(spec, "s", "v", ["_hash", "_t", "_file"])}
            UNION ALL BY NAME SELECT {k}, 'mark' AS _kind, _m, _t, _hash, _file, _type AS _load_type FROM new_marks
            UNION ALL BY NAME SELECT {k}, 'mark' AS _kind, {latest} AS _t, 'reset' AS _load_type FROM x_keys
            UNION ALL BY NAME SELECT {k}, 'event' AS _kind, _m, _t, _file FROM b_e
            UNION ALL BY NAME SELECT 'extract' AS _kind, _t, _file, _load_type FROM extract_rows)
            """
        )
        fresh_keys = f" UNION ALL SELECT {k} FROM fresh" if self.fresh else ""
        self.sql(f"CREATE OR REPLACE TEMP TABLE plan_affected AS SELECT * FROM aff{fresh_keys}")
        (batch_keys,) = con.execute(
            f"SELECT count(*) FROM (SELECT {k} FROM bfirst UNION SELECT {k} FROM b_e)"
        ).fetchall()[0]
        batch_keys += self.quiet + self.marked + (con.execute("SELECT count(*) FROM fresh").fetchall()[0][0] if self.fresh else 0)
        # The connection may live on (the loader diffs on it): free the batch's big temp tables.
        big = [f"{n}_all" for n, e in zip(self.names, self.extracts, strict=True) if e.load_type != "keys"]
        for table in big + [
            "b_ds",
            "known",
            "bfirst",
            "newv",
            "f_v",
            "f_s",
            "fv",
            "b_c",
            "b_cg",
            "marks_g",
            "marks_old",
            "b_a",
            "fresh",
            "split",
            "x_same",
            "x_multi",
            "m_multi",
            "fresh_keys",
            "open_runs",
            "marked",
            "k_marked",
        ] + [f"{n}_keys" for n in self.names]:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return StagedPlan(new_state="plan_new_state", history=history, affected="plan_affected", batch_keys=batch_keys)


_TYPE_RANK = "_reread DESC, CASE _type WHEN 'sighting' THEN 0 WHEN 'present' THEN 1 ELSE 2 END"


def _groups_sql(target: str, source: str, keys: str) -> str:
    """One row per key and instant: the content type and an id of its set of versions."""
    type_col = "_load_type" if source in ("marks_old", "marks_b", "live_absent") else "_type"
    return f"""CREATE OR REPLACE TEMP TABLE {target} AS
    SELECT {keys}, _t, any_value({type_col}) AS _type,
           CASE WHEN count(_hash) = 1 THEN min(_hash)
                ELSE (hash(count(_hash), min(_hash), max(_hash), bit_xor(_hash)) & 9223372036854775807)::BIGINT
           END AS _cid
    FROM {source} GROUP BY ALL"""


def _compatible(c: str, g: str) -> str:
    """The batch's content ``c`` continues the run ``g`` in effect before it."""
    return f"""coalesce(({c}._type = 'sighting' AND {g}._type = 'sighting' AND {c}._cid = {g}._cid)
        OR ({c}._type = 'present' AND {g}._type IN ('sighting', 'present'))
        OR ({c}._type = 'absent' AND {g}._type = 'absent'), false)"""


def _spans(marks: str, keys: str, spec: HistorySpec) -> str:
    """The runs of the keys in ``keys``: each mark row with ``_next``, the key's next mark instant."""
    k = _keys(spec)
    return f"""(SELECT m.*, n._next FROM (SELECT m.* FROM {marks} m SEMI JOIN {keys} s ON {_on(spec, "m", "s")}) m
        JOIN (SELECT {k}, _t, lead(_t) OVER (PARTITION BY {k} ORDER BY _t) AS _next
              FROM (SELECT DISTINCT {k}, _t FROM {marks} SEMI JOIN {keys} USING ({k}))) n
        ON {_on(spec, "m", "n", ["_t"])})"""


def _refuse_old_state(columns: set[str]) -> None:
    if "_gen" not in columns:
        from medallion_assets.engine.base.schema import BaseLoadError

        raise BaseLoadError(
            "the hidden state table was written by an older version of medallion-assets (one row per sighting); "
            "rebuild it once with recreate: true on the table"
        )


def fold(
    con: duckdb.DuckDBPyConnection,
    spec: HistorySpec,
    versions: str,
    sightings: str,
    deletions: str,
    extra: str | None = None,
    into: str | None = None,
) -> pa.Table | str:
    """The history rows of every key in the given observation relations (see the module doc),
    plus the rows of ``extra`` (a query with the same columns), if given: as Arrow, or ``into``
    a temp table of that name on ``con`` (returned), which spills past the memory budget."""
    k = _keys(spec)
    tracked = ", ".join(f"v.{q(c)}" for c in spec.tracked)
    state_hash = f"hash(e._del{', ' + tracked if tracked else ''})"
    data = ", ".join(f"v.{q(c)}" for c in spec.columns)
    # Most keys have one version and no deletion: their history is that version, open-ended.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fv AS
        SELECT * FROM {versions} QUALIFY row_number() OVER (PARTITION BY {k}, _hash ORDER BY _t, _file) = 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fold_simple AS
        SELECT {k} FROM fv GROUP BY ALL HAVING count(*) = 1
        EXCEPT SELECT {k} FROM {deletions}"""
    )
    simple = f"""
    SELECT {data}, v._file AS lh_source_file, false AS lh_is_deleted, v._m AS lh_valid_from,
           {OPEN_END_SQL} AS lh_valid_to, true AS lh_is_current
    FROM fv v SEMI JOIN fold_simple fk ON {_on(spec, "v", "fk")}"""
    sql = f"""
    WITH
    cv AS (SELECT v.* FROM fv v ANTI JOIN fold_simple fk ON {_on(spec, "v", "fk")}),
    cs AS (SELECT s.* FROM {sightings} s ANTI JOIN fold_simple fk ON {_on(spec, "s", "fk")}),
    fs AS (SELECT {k}, min(_t) AS _first FROM cv GROUP BY ALL),
    same_t AS (SELECT DISTINCT {k}, _t FROM cs),
    de AS (
        SELECT {_keys(spec, "d")}, d._m AS _d, d._t AS _tobs, d._file
        FROM {deletions} d JOIN fs ON {_on(spec, "d", "fs")}
        ANTI JOIN same_t st ON {_on(spec, "d", "st")} AND st._t = d._t AND d._kind = 'absent'
        WHERE d._kind = 'event' OR fs._first < d._t
    ),
    se AS (
        SELECT {_keys(spec, "s")}, s._m, s._hash, s._t, s._file, max(x._d) AS _ld
        FROM cs s LEFT JOIN de x ON {_on(spec, "x", "s")} AND x._tobs < s._t
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
        SELECT {_keys(spec, "e")}, e._eff, e._del, e._file, e._cm, e._ch, {state_hash} AS _state
        FROM ev2 e JOIN cv v ON {_on(spec, "v", "e")} AND v._hash = e._ch
    ),
    ev4 AS (
        SELECT *, CASE WHEN _state IS NOT DISTINCT FROM lag(_state) OVER (PARTITION BY {k} ORDER BY _eff) THEN 0 ELSE 1 END AS _new
        FROM ev3
    ),
    ev5 AS (SELECT *, sum(_new) OVER (PARTITION BY {k} ORDER BY _eff ROWS UNBOUNDED PRECEDING) AS _grp FROM ev4),
    ev6 AS (
        SELECT *, first_value(_ch) OVER wi AS _ph
        FROM ev5 WINDOW wi AS (PARTITION BY {k}, _grp ORDER BY _cm DESC, _eff DESC)
    ),
    isl AS (
        SELECT {k}, _grp, min(_eff) AS _from, bool_or(_del) AS _deleted, any_value(_ph) AS _ph,
               arg_min(_file, _eff) FILTER (WHERE _ch = _ph) AS _src
        FROM ev6 GROUP BY ALL
    ),
    hist AS (SELECT *, lead(_from) OVER (PARTITION BY {k} ORDER BY _from) AS _next FROM isl)
    SELECT {data}, h._src AS lh_source_file, h._deleted AS lh_is_deleted, h._from AS lh_valid_from,
           coalesce(h._next - INTERVAL 1 MICROSECOND, {OPEN_END_SQL}) AS lh_valid_to,
           h._next IS NULL AS lh_is_current
    FROM hist h JOIN cv v ON {_on(spec, "v", "h")} AND v._hash = h._ph
    UNION ALL
    {simple}
    {"UNION ALL " + extra if extra else ""}
    """
    if into is not None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {sql}")
        return into
    return con.sql(sql).to_arrow_table()


def build_history(extracts: Sequence[Extract], spec: HistorySpec) -> pa.Table:
    """The full SCD2 history of a set of extracts, from nothing (the loader's path: runs and marks)."""
    return plan(None, extracts, spec).history


def reference_history(extracts: Sequence[Extract], spec: HistorySpec) -> pa.Table:
    """The same history folded from every sighting and absence of every extract, with no runs:
    the definition that :func:`build_history` and incremental loads are tested against."""
    con = connect()
    try:
        data = [e.rows for e in extracts if e.load_type != "keys"]
        proto = data[0].select(list(spec.columns)).schema.empty_table()
        steps = _Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=None)
        steps.register_state(state=None, proto=proto)
        for name, extract in zip(steps.names, steps.extracts, strict=True):
            observe(con, extract, spec, name)
        steps.batch_observations()
        steps.batch_absences()
        steps.new_versions()
        con.execute("CREATE OR REPLACE TEMP TABLE r_s AS SELECT * EXCLUDE (_mt) FROM b_s")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE r_d AS SELECT *, 'absent' AS _kind FROM b_a UNION ALL SELECT *, 'event' FROM b_e"
        )
        return fold(con, spec, "newv", "r_s", "r_d")
    finally:
        con.close()


def current_rows(history: pa.Table) -> pa.Table:
    """SCD1 view of a history: the current version of each key, without validity columns."""
    current = history.filter(pc.equal(history.column("lh_is_current"), True))
    return current.drop_columns(["lh_valid_from", "lh_valid_to", "lh_is_current"])
