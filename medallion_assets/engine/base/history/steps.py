"""The steps of a plan: each defines temp relations on the connection, named after what they hold."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.history.daily import DailySplit
from medallion_assets.engine.base.history.fold import fold
from medallion_assets.engine.base.history.marks import MarkSteps, _groups_sql, _spans
from medallion_assets.engine.base.history.observe import observe
from medallion_assets.engine.base.history.spec import (
    KINDS,
    MARK_COLUMNS,
    PRESENCE,
    STATE_COLUMNS,
    HistorySpec,
    StagedPlan,
    _keys,
    _on,
    _refuse_old_state,
    _union,
)
from medallion_assets.engine.base.reader import Extract
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal, timestamp_literal


class Steps(DailySplit, MarkSteps):
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
            "fold_first_versions",
            "fold_single_version_keys",
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
