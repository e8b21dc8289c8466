"""The Base invariants of docs/design.md as queries, shared by asset checks and tests."""

from __future__ import annotations

import pyarrow as pa

from medallion_assets.engine.base.history import OPEN_END_SQL
from medallion_assets.engine.memory import new_database
from medallion_assets.engine.sqltext import quote_identifier as q


def scd2_violations(table: pa.Table | object, keys: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Counts of keys breaking each SCD2 invariant (all zero when the history is sound)."""
    k = ", ".join(q(c) for c in keys)
    con = new_database()
    try:
        con.register("h", table)
        return {
            "keys_without_one_current_row": con.execute(
                f"SELECT count(*) FROM (SELECT {k} FROM h GROUP BY ALL HAVING count(*) FILTER (WHERE lh_is_current) <> 1)"
            ).fetchall()[0][0],
            "gaps_or_overlaps": con.execute(
                f"""SELECT count(*) FROM (
                    SELECT lh_valid_to, lead(lh_valid_from) OVER (PARTITION BY {k} ORDER BY lh_valid_from) AS nxt FROM h)
                WHERE nxt IS NOT NULL AND lh_valid_to + INTERVAL 1 MICROSECOND <> nxt"""
            ).fetchall()[0][0],
            "open_rows_not_current": con.execute(
                f"SELECT count(*) FROM h WHERE (lh_valid_to = {OPEN_END_SQL}) <> lh_is_current"
            ).fetchall()[0][0],
            "empty_intervals": con.execute("SELECT count(*) FROM h WHERE lh_valid_to < lh_valid_from").fetchall()[0][0],
            "repeated_versions": con.execute(
                f"""SELECT count(*) FROM (SELECT *, lag(lh_is_deleted) OVER w AS pd, lag(lh_is_current) OVER w AS pc
                    FROM h WINDOW w AS (PARTITION BY {k} ORDER BY lh_valid_from)) WHERE pd AND lh_is_deleted"""
            ).fetchall()[0][0],
        }
    finally:
        con.close()


def duplicate_keys(table: pa.Table | object, keys: list[str] | tuple[str, ...]) -> int:
    """SCD1: keys held by more than one row."""
    k = ", ".join(q(c) for c in keys)
    con = new_database()
    try:
        con.register("h", table)
        return con.execute(f"SELECT count(*) FROM (SELECT {k} FROM h GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
    finally:
        con.close()
