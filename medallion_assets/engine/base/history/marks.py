"""Marks: where a key's content in the full and keys extracts changes, and the runs they start."""

from __future__ import annotations

from medallion_assets.engine.base.history.spec import PRESENCE, HistorySpec, _keys, _on
from medallion_assets.engine.base.reader import Extract
from medallion_assets.engine.sqltext import string_literal, timestamp_literal


class MarkSteps:
    """Steps of :class:`~medallion_assets.engine.base.history.steps.Steps` that place the batch's
    full and keys extracts among the stored marks."""

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
