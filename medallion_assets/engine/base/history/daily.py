"""The daily full extract's short way: the keys it repeats, and those the state has never seen, leave the fold."""

from __future__ import annotations

from medallion_assets.engine.base.history.observe import _several_rows
from medallion_assets.engine.base.history.spec import OPEN_END_SQL, _keys, _on
from medallion_assets.engine.sqltext import quote_identifier as q
from medallion_assets.engine.sqltext import string_literal


class DailySplit:
    """Steps of :class:`~medallion_assets.engine.base.history.steps.Steps` for one full extract
    later than every applied extract (the daily case)."""

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
