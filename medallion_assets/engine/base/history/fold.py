"""The SCD2 fold: the history rows of every key in a set of observations, as one set-based query."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.history.spec import OPEN_END_SQL, HistorySpec, _keys, _on
from medallion_assets.engine.sqltext import quote_identifier as q


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
