"""The SCD2 fold: the history rows of every key in a set of observations, as one set-based query.

Each relation of the query is built by a function named after what it holds, and each follows
one rule of the package docstring (``medallion_assets.engine.base.history``):

1. ``counted_deletions``: an absence at ``T`` deletes a key seen in an earlier extract and not
   seen in an extract at ``T``; a delete event deletes at its modify date.
2. ``version_starts``: a sighting starts its version at the modify date, unless a deletion
   observed before that extract is not earlier than the modify date (the key came back at the
   extract's time); ``events_in_order`` drops a come-back that a later-dated version precedes.
3. ``event_states`` / ``version_islands``: events in time order; a new version starts where the
   state (deleted?, tracked columns) changes; the other columns show the version's latest content,
   ``lh_source_file`` the first extract that carried that content within the version.
4. the final select: ``lh_valid_to`` is the next version's start minus one microsecond, or
   9999-12-31.

Most keys have one version and no deletion: they skip the rules (``single_version_history``).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from medallion_assets.engine.base.history.spec import OPEN_END_SQL, HistorySpec, _keys, _on
from medallion_assets.engine.sqltext import quote_identifier as q

FIRST_VERSIONS = "fold_first_versions"  # temp tables the fold leaves on the connection
SINGLE_VERSION_KEYS = "fold_single_version_keys"


def fold(
    con: duckdb.DuckDBPyConnection,
    spec: HistorySpec,
    versions: str,
    sightings: str,
    deletions: str,
    *,
    extra: str | None = None,
    into: str | None = None,
) -> pa.Table | str:
    """The history rows of every key in the given observation relations (see the module doc),
    plus the rows of ``extra`` (a query with the same columns), if given: as Arrow, or ``into``
    a temp table of that name on ``con`` (returned), which spills past the memory budget."""
    _stage_single_version_keys(con, spec, versions, deletions)
    relations = _rule_relations(spec, sightings, deletions)
    sql = "WITH\n" + ",\n".join(f"{name} AS ({body})" for name, body in relations)
    sql += f"\n{_history_rows(spec)}\nUNION ALL\n{_single_version_history(spec)}"
    if extra:
        sql += f"\nUNION ALL {extra}"
    if into is not None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {sql}")
        return into
    return con.sql(sql).to_arrow_table()


def _stage_single_version_keys(con: duckdb.DuckDBPyConnection, spec: HistorySpec, versions: str, deletions: str) -> None:
    """Each distinct version once (its first observation), and the keys with one version and no deletion."""
    k = _keys(spec)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {FIRST_VERSIONS} AS
        SELECT * FROM {versions} QUALIFY row_number() OVER (PARTITION BY {k}, _hash ORDER BY _t, _file) = 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {SINGLE_VERSION_KEYS} AS
        SELECT {k} FROM {FIRST_VERSIONS} GROUP BY ALL HAVING count(*) = 1
        EXCEPT SELECT {k} FROM {deletions}"""
    )


def _single_version_history(spec: HistorySpec) -> str:
    """A key with one version and no deletion: that version, open-ended, from its modify date."""
    data = ", ".join(f"v.{q(c)}" for c in spec.columns)
    return f"""SELECT {data}, v._file AS lh_source_file, false AS lh_is_deleted, v._m AS lh_valid_from,
           {OPEN_END_SQL} AS lh_valid_to, true AS lh_is_current
    FROM {FIRST_VERSIONS} v SEMI JOIN {SINGLE_VERSION_KEYS} one ON {_on(spec, "v", "one")}"""


def _rule_relations(spec: HistorySpec, sightings: str, deletions: str) -> list[tuple[str, str]]:
    """The query's relations in order, each (name, SELECT)."""
    return [
        *_other_keys(spec, sightings),
        ("counted_deletions", _counted_deletions(spec, deletions)),
        *_version_starts(spec),
        ("events", _events(spec)),
        *_events_in_order(spec),
        *_event_states(spec),
        *_version_islands(spec),
    ]


def _other_keys(spec: HistorySpec, sightings: str) -> list[tuple[str, str]]:
    """The versions and sightings of the keys the rules must fold, and each key's first sighting."""
    k = _keys(spec)
    return [
        ("fold_versions", f"SELECT v.* FROM {FIRST_VERSIONS} v ANTI JOIN {SINGLE_VERSION_KEYS} one ON {_on(spec, 'v', 'one')}"),
        ("fold_sightings", f"SELECT s.* FROM {sightings} s ANTI JOIN {SINGLE_VERSION_KEYS} one ON {_on(spec, 's', 'one')}"),
        ("first_seen", f"SELECT {k}, min(_t) AS _first FROM fold_versions GROUP BY ALL"),
        ("sighting_times", f"SELECT DISTINCT {k}, _t FROM fold_sightings"),
    ]


def _counted_deletions(spec: HistorySpec, deletions: str) -> str:
    """Rule 1: delete events, and absences after the key's first sighting with no sighting at the same time."""
    return f"""SELECT {_keys(spec, "d")}, d._m AS _d, d._t AS _tobs, d._file
        FROM {deletions} d JOIN first_seen fs ON {_on(spec, "d", "fs")}
        ANTI JOIN sighting_times st ON {_on(spec, "d", "st")} AND st._t = d._t AND d._kind = 'absent'
        WHERE d._kind = 'event' OR fs._first < d._t"""


def _version_starts(spec: HistorySpec) -> list[tuple[str, str]]:
    """Rule 2: each sighting with the last deletion observed before it; a version starts at its
    modify date, or at the extract's time when that deletion is not earlier (a come-back)."""
    k = _keys(spec)
    return [
        (
            "sightings_after_deletions",
            f"""SELECT {_keys(spec, "s")}, s._m, s._hash, s._t, s._file, max(x._d) AS _ld
            FROM fold_sightings s LEFT JOIN counted_deletions x ON {_on(spec, "x", "s")} AND x._tobs < s._t
            GROUP BY ALL""",
        ),
        (
            "version_starts",
            f"""SELECT {k}, CASE WHEN _ld IS NOT NULL AND _ld >= _m THEN _t ELSE _m END AS _eff, _m, _hash,
               min(_t) AS _t, arg_min(_file, _t) AS _file
            FROM sightings_after_deletions GROUP BY ALL""",
        ),
    ]


def _events(spec: HistorySpec) -> str:
    """Version starts (``_ord`` 0) and deletions (``_ord`` 1) of each key, at their effective time."""
    k = _keys(spec)
    return f"""SELECT {k}, _eff, _m, _hash, _t, _file, 0 AS _ord FROM version_starts
        UNION ALL
        SELECT {k}, _d, NULL::TIMESTAMP, NULL::BIGINT, _tobs, _file, 1 FROM counted_deletions"""


def _events_in_order(spec: HistorySpec) -> list[tuple[str, str]]:
    """Rule 3's order: one event per key and instant (a deletion after a row at the same instant,
    then the latest modify date); rule 2's last clause: a version whose modify date is older than
    one already started is dropped (modify dates never run backwards within a key's history)."""
    k = _keys(spec)
    return [
        (
            "event_per_instant",
            f"""SELECT * FROM events
            QUALIFY row_number() OVER (
                PARTITION BY {k}, _eff ORDER BY _ord DESC, _m DESC NULLS LAST, _t DESC, _hash DESC, _file DESC) = 1""",
        ),
        (
            "events_with_newest_seen",
            f"""SELECT *, max(_m) OVER (
                PARTITION BY {k} ORDER BY _eff ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS _seen_m
            FROM event_per_instant""",
        ),
        (
            "ordered_events",
            "SELECT * EXCLUDE (_seen_m) FROM events_with_newest_seen WHERE _ord = 1 OR _seen_m IS NULL OR _m >= _seen_m",
        ),
    ]


def _event_states(spec: HistorySpec) -> list[tuple[str, str]]:
    """Rule 3's state: at each event, deleted or not and the content in force (``_cm``, ``_ch``);
    ``_state`` hashes what starts a new version (the deletion flag and the tracked columns)."""
    k = _keys(spec)
    tracked = ", ".join(f"v.{q(c)}" for c in spec.tracked)
    return [
        (
            "events_with_content",
            f"""SELECT *, _ord = 1 AS _del,
                last_value(CASE WHEN _ord = 0 THEN _m END IGNORE NULLS) OVER w AS _cm,
                last_value(CASE WHEN _ord = 0 THEN _hash END IGNORE NULLS) OVER w AS _ch
            FROM ordered_events WINDOW w AS (PARTITION BY {k} ORDER BY _eff ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""",
        ),
        (
            "event_states",
            f"""SELECT {_keys(spec, "e")}, e._eff, e._del, e._file, e._cm, e._ch,
                hash(e._del{", " + tracked if tracked else ""}) AS _state
            FROM events_with_content e JOIN fold_versions v ON {_on(spec, "v", "e")} AND v._hash = e._ch""",
        ),
    ]


def _version_islands(spec: HistorySpec) -> list[tuple[str, str]]:
    """Rule 3's versions: runs of events with the same state (islands); each shows its latest
    content (``_ph``) and takes ``lh_source_file`` from the first event that carried it."""
    k = _keys(spec)
    return [
        (
            "state_changes",
            f"""SELECT *, CASE WHEN _state IS NOT DISTINCT FROM lag(_state) OVER (PARTITION BY {k} ORDER BY _eff)
                THEN 0 ELSE 1 END AS _new
            FROM event_states""",
        ),
        (
            "numbered_islands",
            f"SELECT *, sum(_new) OVER (PARTITION BY {k} ORDER BY _eff ROWS UNBOUNDED PRECEDING) AS _grp FROM state_changes",
        ),
        (
            "island_content",
            f"""SELECT *, first_value(_ch) OVER wi AS _ph
            FROM numbered_islands WINDOW wi AS (PARTITION BY {k}, _grp ORDER BY _cm DESC, _eff DESC)""",
        ),
        (
            "version_islands",
            f"""SELECT {k}, _grp, min(_eff) AS _from, bool_or(_del) AS _deleted, any_value(_ph) AS _ph,
                arg_min(_file, _eff) FILTER (WHERE _ch = _ph) AS _src
            FROM island_content GROUP BY ALL""",
        ),
        ("version_spans", f"SELECT *, lead(_from) OVER (PARTITION BY {k} ORDER BY _from) AS _next FROM version_islands"),
    ]


def _history_rows(spec: HistorySpec) -> str:
    """Rule 4: one row per version, valid until the next version starts (or open-ended)."""
    data = ", ".join(f"v.{q(c)}" for c in spec.columns)
    return f"""SELECT {data}, h._src AS lh_source_file, h._deleted AS lh_is_deleted, h._from AS lh_valid_from,
           coalesce(h._next - INTERVAL 1 MICROSECOND, {OPEN_END_SQL}) AS lh_valid_to,
           h._next IS NULL AS lh_is_current
    FROM version_spans h JOIN fold_versions v ON {_on(spec, "v", "h")} AND v._hash = h._ph"""
