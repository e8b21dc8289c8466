"""Adding a batch of extracts to the observations: the plan, its Arrow form, and the reference history."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.engine.base.history.fold import fold
from medallion_assets.engine.base.history.observe import observe
from medallion_assets.engine.base.history.spec import HistoryPlan, HistorySpec, StagedPlan
from medallion_assets.engine.base.history.steps import Steps
from medallion_assets.engine.base.reader import Extract
from medallion_assets.engine.storage.scan import connect


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
    steps = Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=reread_keys)
    return steps.run(state=state, proto=schema.empty_table().select(list(spec.columns)))


def plan(
    state: pa.Table | object | None,
    extracts: Sequence[Extract],
    spec: HistorySpec,
    *,
    schema: pa.Schema | None = None,
    reread_keys: Callable[[str], pa.Table] | None = None,
) -> HistoryPlan:
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
        staged = Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=reread_keys).run(
            state=state, proto=schema.empty_table().select(list(spec.columns))
        )
        arrow = {name: con.sql(f"SELECT * FROM {name}").to_arrow_table() for name in (staged.new_state, staged.history, staged.affected)}
        return HistoryPlan(
            new_state=arrow[staged.new_state], history=arrow[staged.history], affected=arrow[staged.affected], batch_keys=staged.batch_keys
        )
    finally:
        con.close()


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
        steps = Steps(con=con, spec=spec, extracts=list(extracts), reread_keys=None)
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
