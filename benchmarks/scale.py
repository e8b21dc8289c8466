"""Benchmark: the Base engine (and one Curated fact) on big generated tables, each load next to a
floor measured in the same run under the same memory limit.

    .venv/bin/python benchmarks/scale.py                                  # 1,000,000 rows, every case, both shapes
    .venv/bin/python benchmarks/scale.py --rows 200000                    # a quick check
    .venv/bin/python benchmarks/scale.py --sizes 10M,30M,100M --shape narrow --cases scd2_initial,scd2_change
    .venv/bin/python benchmarks/scale.py --memory-limit 2GB --json        # JSON lines after the table
    .venv/bin/python benchmarks/scale.py --keep                           # keep the generated data and logs

What it does, per shape and size N:

* lands the daily full extracts as Parquet (day 2 only when a case reads it), written by DuckDB
  straight from ``range(N)`` (no table is ever held in Python or Arrow; every value is a hash of
  the row number, so a run is repeatable): day 1 has N keys; day 2 is a "1% change" of it: 0.5%
  of the keys updated (``city`` and the modify date change), 0.25% missing (deleted) and 0.25%
  new keys. The shapes are ``narrow`` (5 columns) and ``wide`` (30 columns: text,
  DECIMAL(18,2), timestamps, dates, integers, booleans, several with nulls).
* runs the cases (``--cases``, default all):
  ``scd2_initial`` day 1 into an empty scd2 table; ``scd2_change`` day 2 into that table (deletes
  included); ``scd1_change`` day 2 into an scd1 table that holds day 1; ``append`` day 2 appended
  to an append table that holds day 1; ``overwrite`` day 2 replacing day 1 in an overwrite table;
  ``fact`` one overwrite build of ``fact_lines`` from a base table of the N day-1 rows, its
  ``region_key`` mapped to an SCD2 ``dim_region`` (N/100 keys, two loads so 10% of the keys have
  two versions) by the fact's ``calendar_key``, and ``calendar_key`` checked against ``dim_calendar``;
  ``fact_change`` the same fact with ``write_pattern: merge`` over an scd1 base table, reading
  only rows changed since its last load (``getvariable('changed_since')``): built from day 1,
  then, after the base load of day 2, again; the second build is measured (``full_build_s`` is
  the first).
  The day-1 loads the change cases start from are setup: run the same way, printed as progress
  lines, not in the table.
* measures the floor: the least any engine must do with the same extract. DuckDB, with
  ``memory_limit`` set to the limit, streams the landing file into one new Delta table through
  ``write_deltalake`` and a RecordBatchReader of 100,000 rows. The day-1 floor's table doubles
  as the fact's base table.

Every step (landing, floor, setup, measured load) runs in a fresh Python process
(``python benchmarks/scale.py --child <spec>``), as a Dagster step does, with
``MEDALLION_MEMORY_LIMIT`` (``--memory-limit``, default 3GB) and ``MEDALLION_TEMP_DIR`` (a
folder of the run's temp dir) in its environment. The limit is what the engine is told; the
benchmark does not enforce it from outside, so a step that ignores it shows as ``over limit``.

The figures in the table:

* ``s``:        the step's own time inside its process: the engine call (or the floor's read and
                write), without interpreter start and imports (``process_s`` in ``--json`` has them);
* ``rows/s``:   rows of the landing file (the fact: of its base table) divided by ``s``;
* ``peak MB``:  peak resident memory of ALL processes of the step: the parent sums VmRSS of the
                child and every descendant from ``/proc`` every 50 ms and keeps the maximum (never
                below the child's own maximum, which a spike between two samples could hide);
                shared pages are counted once per process;
* ``self MB``:  the child's own ``ru_maxrss`` (from ``wait4``, so a killed child has one too);
* ``floor s`` / ``floor MB``: the same two figures of the floor for the file the case reads;
* ``x floor``:  ``s`` divided by ``floor s``;
* ``note``:     ``ok``, ``over limit`` (peak MB above the memory limit) or ``FAILED:`` and the
                exception line of the step's error output (or the signal that killed it). A failed
                step never stops the benchmark. A process that crashes after its step finished and
                reported (seen: SIGABRT while the interpreter shuts down) keeps its figures, and
                the note says ``then at exit:`` and how it ended.

MB are MiB (2^20 bytes); the limit is read as DuckDB reads it (``3GB`` = 3 * 10^9 bytes = 2,861 MiB).
The machine line at the top has the load average: on a shared machine, compare runs made under
similar load. Temp dirs (data, spill folders, the steps' stdout/stderr) are removed at the end
unless ``--keep``; ``--temp-dir`` puts them on another disk (the wide landing file of 100M keys
is about 11 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

DAY1, DAY2 = date(2026, 1, 1), date(2026, 1, 2)
SOURCE = "bench"
CASES = ("scd2_initial", "scd2_change", "scd1_change", "append", "overwrite", "fact", "fact_change")
SHAPES = ("narrow", "wide")
FLOOR_BATCH_ROWS = 100_000
SAMPLE_SECONDS = 0.05
CALENDAR = (date(2024, 1, 1), date(2026, 12, 31))


# --- the generated tables ------------------------------------------------------------------
# Every column is a SQL expression of the row number ``i`` and two flags of the day-2 change:
# ``upd`` (an existing key whose city and modify date change) and ``ins`` (a new key).


def h(tag: str, modulo: int) -> str:
    """A pseudo-random BIGINT in [0, modulo) from the row number; ``tag`` decorrelates columns."""
    return f"CAST(hash(i, '{tag}') % {modulo} AS BIGINT)"


def nullable(expression: str, tag: str, every: int) -> str:
    return f"CASE WHEN {h(tag, every)} = 0 THEN NULL ELSE {expression} END"


def narrow_columns(regions: int) -> list[tuple[str, str]]:
    return [
        ("customer_id", "i + 1"),
        ("name", "'customer ' || CAST(i + 1 AS VARCHAR)"),
        ("city", f"'city_' || CAST(({h('city', 500)} + CAST(upd AS BIGINT)) % 500 AS VARCHAR)"),
        ("region_id", f"{h('region', regions)} + 1"),
        (
            "modified_at",
            f"CASE WHEN upd OR ins THEN TIMESTAMP '{DAY2} 12:00:00' "
            f"ELSE TIMESTAMP '2025-01-01' + to_seconds({h('modified', 365 * 86_400)}) END",
        ),
    ]


def money(tag: str, cents: int) -> str:
    return f"CAST({h(tag, cents)} / 100 AS DECIMAL(18,2))"


def stamp(tag: str, start: str, days: int) -> str:
    return f"TIMESTAMP '{start}' + to_seconds({h(tag, days * 86_400)})"


def day_of(tag: str, start: str, days: int) -> str:
    return f"DATE '{start}' + CAST({h(tag, days)} AS INTEGER)"


def wide_columns(regions: int) -> list[tuple[str, str]]:
    return [
        *narrow_columns(regions),
        ("email", "'user' || CAST(i + 1 AS VARCHAR) || '@example.com'"),
        ("country", f"'country_' || CAST({h('country', 40)} AS VARCHAR)"),
        ("segment", f"['consumer', 'corporate', 'home_office', 'small_business'][{h('segment', 4)} + 1]"),
        ("phone", nullable(f"'+31 6 ' || lpad(CAST({h('phone', 100_000_000)} AS VARCHAR), 8, '0')", "phone_null", 10)),
        ("street", f"'street ' || CAST({h('street', 20_000)} AS VARCHAR) || ' ' || CAST({h('house', 300)} AS VARCHAR)"),
        ("loyalty_tier", f"['bronze', 'silver', 'gold', 'platinum'][{h('tier', 4)} + 1]"),
        ("postal_code", f"lpad(CAST({h('postal', 10_000)} AS VARCHAR), 4, '0') || 'AB'"),
        ("notes", nullable("'note ' || md5(CAST(i AS VARCHAR))", "notes_null", 3)),  # two in three null
        ("credit_limit", money("credit", 10_000_000)),
        ("balance", money("balance", 100_000_000)),
        ("last_order_amount", nullable(money("last_order", 500_000), "last_order_null", 5)),
        ("discount_rate", money("discount", 5_000)),
        ("created_at", stamp("created", "2015-01-01", 3_650)),
        ("last_login_at", nullable(stamp("login", "2025-01-01", 365), "login_null", 4)),
        ("birth_date", day_of("birth", "1940-01-01", 25_000)),
        ("signup_date", day_of("signup", "2015-01-01", 3_650)),
        ("churn_date", nullable(day_of("churn", "2020-01-01", 2_000), "churn_null", 2)),
        ("order_count", f"CAST({h('orders', 500)} AS INTEGER)"),
        ("loyalty_points", h("points", 1_000_000)),
        ("age", nullable(f"CAST(18 + {h('age', 80)} AS INTEGER)", "age_null", 8)),
        ("household_size", f"CAST(1 + {h('household', 6)} AS INTEGER)"),
        ("rating", f"CAST(1 + {h('rating', 5)} AS INTEGER)"),
        ("is_active", f"{h('active', 10)} > 0"),
        ("is_vip", f"{h('vip', 50)} = 0"),
        ("accepts_marketing", nullable(f"{h('marketing', 2)} = 0", "marketing_null", 6)),
    ]


def columns(shape: str, rows: int) -> list[tuple[str, str]]:
    regions = dimension_rows(rows)
    return narrow_columns(regions) if shape == "narrow" else wide_columns(regions)


def dimension_rows(rows: int) -> int:
    return max(1, rows // 100)


def day_rows_sql(rows: int, day: date) -> str:
    """Row numbers of one day's full extract with the change flags; day 2 drops 0.25% of the keys
    (change bucket 0), updates 0.5% (buckets 1 and 2) and adds rows // 400 new keys."""
    if day == DAY1:
        return f"SELECT i, false AS upd, false AS ins FROM range({rows}) t(i)"
    bucket = "hash(i, 'change') % 400"
    return (
        f"SELECT i, i < {rows} AND {bucket} IN (1, 2) AS upd, i >= {rows} AS ins "
        f"FROM range({rows + rows // 400}) t(i) WHERE i >= {rows} OR {bucket} <> 0"
    )


def landing_sql(shape: str, rows: int, day: date) -> str:
    select = ", ".join(f"{expression} AS {name}" for name, expression in columns(shape, rows))
    return f"SELECT {select} FROM ({day_rows_sql(rows, day)})"


def landing_path(data_dir: Path, shape: str, day: date) -> Path:
    from medallion_assets.engine.storage.paths import landing_file_path

    return landing_file_path(
        data_dir, SOURCE, shape, "full", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="parquet"
    )


# --- metadata of the tables under test -------------------------------------------------------


def base_table(shape: str, behaviour: str, name: str | None = None):
    from medallion_assets.engine.base.model import BaseTable

    keyed = behaviour in ("scd1", "scd2")
    return BaseTable.model_validate(
        {
            "object": shape,
            "source": SOURCE,
            "name": name or f"{SOURCE}_{shape}_{behaviour}",
            "landing": [{"source": SOURCE, "object": shape}],
            "format": "parquet",
            "write_behaviour": behaviour,
            "business_keys": ["customer_id"] if keyed else [],
            "modify_date_column": "modified_at" if keyed else None,
        }
    )


LINES_TABLE = f"{SOURCE}_lines"  # the fact's base table: the day-1 floor's Delta table
REGION_TABLE = f"{SOURCE}_region"


def region_dimension():
    from medallion_assets.engine.curated.model import DimensionMeta, DimensionSpec
    from medallion_assets.engine.curated.sql import parse_select

    sql = f"SELECT region_id AS region_key, region_name, segment, modified_at FROM base.{REGION_TABLE}"
    source = "benchmarks/scale.py:dim_region"
    spec = DimensionSpec(write_pattern="scd2", valid_from_column="modified_at")
    return DimensionMeta(
        name="region", spec=spec, sql=sql, sql_path=Path(source), reads=parse_select(sql, source=source)
    )


def calendar_dimension():
    from medallion_assets.engine.curated.model import CalendarMeta, CalendarSpec

    return CalendarMeta(CalendarSpec(start=CALENDAR[0], end=CALENDAR[1]))


FACT_BASE = f"{SOURCE}_fact_lines"  # the fact_change case's scd1 base table


def lines_fact(shape: str, rows: int, *, merge: bool = False):
    """``fact_lines`` over the floor's table (overwrite), or with ``merge`` over an scd1 base table,
    reading only the rows changed since its last load (``changed_since``)."""
    from medallion_assets.engine.curated.model import FactMeta, FactSpec
    from medallion_assets.engine.curated.sql import parse_select

    mapped = {"customer_id", "region_id"}
    rest = [name for name, _ in columns(shape, rows) if name not in mapped]
    sql = (
        "SELECT customer_id AS line_key, region_id AS region_key, "
        "CAST(strftime(modified_at, '%Y%m%d') AS INTEGER) AS calendar_key, "
        f"{', '.join(rest)} FROM base.{FACT_BASE if merge else LINES_TABLE}"
    )
    if merge:
        sql += " WHERE getvariable('changed_since') IS NULL OR lh_modified_date > getvariable('changed_since')"
    source = "benchmarks/scale.py:fact_lines"
    dimensions = {"region": region_dimension(), "calendar": calendar_dimension()}
    pattern = {"write_pattern": "merge", "primary_key": ["line_key"]} if merge else {}
    return FactMeta(
        kind="fact",
        name="lines_merged" if merge else "lines",
        spec=FactSpec(degenerate_keys=["line_key"], **pattern),
        sql=sql,
        sql_path=Path(source),
        reads=parse_select(sql, source=source),
        dimensions=dimensions,
    )


# --- the child processes: one step each ------------------------------------------------------


def duckdb_connection():
    """DuckDB under the run's limit and spill folder, insertion order not kept (as the floor needs)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{os.environ['MEDALLION_MEMORY_LIMIT']}'")
    con.execute(f"SET temp_directory = '{os.environ['MEDALLION_TEMP_DIR'].replace(chr(39), chr(39) * 2)}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def child_land(spec: dict) -> dict:
    """Write one day's landing Parquet file with DuckDB's COPY."""
    data_dir, day = Path(spec["data_dir"]), date.fromisoformat(spec["day"])
    path = landing_path(data_dir, spec["shape"], day)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb_connection()
    con.execute("SET preserve_insertion_order = true")  # keep the extract in key order, as a source would
    started = time.perf_counter()
    (written,) = con.execute(
        f"COPY ({landing_sql(spec['shape'], spec['rows'], day)}) TO '{path}' (FORMAT parquet)"
    ).fetchone()
    return {"seconds": time.perf_counter() - started, "rows": int(written), "bytes": path.stat().st_size}


def child_floor(spec: dict) -> dict:
    """Stream the landing file into one new Delta table: DuckDB's reader into write_deltalake."""
    from deltalake import write_deltalake

    con = duckdb_connection()
    started = time.perf_counter()
    reader = con.sql("SELECT * FROM read_parquet(?)", params=[spec["landing"]]).to_arrow_reader(FLOOR_BATCH_ROWS)
    write_deltalake(spec["target"], reader, mode="overwrite")
    return {"seconds": time.perf_counter() - started}


def child_load(spec: dict) -> dict:
    """One ``load_partition`` of a base table."""
    from medallion_assets.engine.base import load_partition

    table = base_table(spec["shape"], spec["behaviour"], spec.get("table"))
    started = time.perf_counter()
    result = load_partition(table, Path(spec["data_dir"]), date.fromisoformat(spec["day"]))
    seconds = time.perf_counter() - started
    counts = ("rows_read", "inserted", "updated", "soft_deleted", "unchanged", "replaced")
    return {"seconds": seconds, "status": result.status, **{name: getattr(result, name) for name in counts}}


def write_regions(data_dir: Path, rows: int, changed: bool) -> None:
    """The dimension's base table; ``changed``: 10% of the regions move segment on 2025-07-01."""
    from deltalake import write_deltalake

    moved = f"({h('moved', 10)} = 0 AND {str(changed).lower()})"
    sql = (
        "SELECT i + 1 AS region_id, 'region ' || CAST(i + 1 AS VARCHAR) AS region_name, "
        f"'segment_' || CAST(({h('segment', 4)} + CAST({moved} AS BIGINT)) % 4 AS VARCHAR) AS segment, "
        f"CASE WHEN {moved} THEN TIMESTAMP '2025-07-01' ELSE TIMESTAMP '2025-01-01' END AS modified_at "
        f"FROM range({dimension_rows(rows)}) t(i)"
    )
    con = duckdb_connection()
    reader = con.sql(sql).to_arrow_reader(FLOOR_BATCH_ROWS)
    write_deltalake(str(data_dir / "base" / REGION_TABLE), reader, mode="overwrite")


def child_dimension(spec: dict) -> dict:
    """Setup of the fact case: dim_calendar and two loads of the SCD2 dim_region."""
    from medallion_assets.engine.curated import load_calendar, load_dimension

    data_dir, rows = Path(spec["data_dir"]), spec["rows"]
    started = time.perf_counter()
    load_calendar(calendar_dimension(), data_dir)
    for changed, now in ((False, datetime(2025, 1, 2)), (True, datetime(2025, 7, 2))):
        write_regions(data_dir, rows, changed)
        result = load_dimension(region_dimension(), data_dir, now=now)
    return {"seconds": time.perf_counter() - started, "dimension_rows": result.row_count}


def child_fact(spec: dict) -> dict:
    """One ``load_fact`` of fact_lines (overwrite), keys mapped to dim_region and dim_calendar."""
    from medallion_assets.engine.curated import load_fact

    fact = lines_fact(spec["shape"], spec["rows"], merge=spec.get("merge", False))
    started = time.perf_counter()
    result = load_fact(fact, Path(spec["data_dir"]), now=datetime.fromisoformat(spec["now"]) if "now" in spec else None)
    seconds = time.perf_counter() - started
    counts = {"inserted": result.inserted, "updated": result.updated}
    return {"seconds": seconds, "row_count": result.row_count, "unmatched": result.unmatched, **counts}


CHILD_STEPS = {
    "land": child_land,
    "floor": child_floor,
    "load": child_load,
    "dimension": child_dimension,
    "fact": child_fact,
}


def run_child(spec: dict) -> None:
    """Inside the child: run the step and print its figures as the last line of stdout."""
    figures = CHILD_STEPS[spec["step"]](spec)
    print(json.dumps(figures, default=str), flush=True)


# --- the parent: running a step and watching its memory ------------------------------------


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants, from ``/proc/<pid>/task/<tid>/children``."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except OSError:  # exited meanwhile
            continue
    return tree


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Sums VmRSS over a process tree every ``SAMPLE_SECONDS``; ``peak`` is the largest sum."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, sum(rss_bytes(pid) for pid in process_tree(self.pid)))
            self.done.wait(SAMPLE_SECONDS)


@dataclass
class StepResult:
    label: str
    ok: bool
    seconds: float | None = None
    process_s: float = 0.0
    peak_mb: float = 0.0
    self_mb: float = 0.0
    error: str = ""
    exit_error: str = ""  # the step finished and reported, then its process did not exit cleanly
    figures: dict = field(default_factory=dict)


def reported_figures(path: Path) -> dict | None:
    """The figures the child printed as its last line, or ``None`` when it never got there."""
    try:
        figures = json.loads(last_line(path))
    except ValueError:
        return None
    return figures if isinstance(figures, dict) and "seconds" in figures else None


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def error_line(path: Path, code: int) -> str:
    """The exception line of the child's traceback (its message's first line: DuckDB and others add
    hint lines after it); else the last line written; else how the process ended."""
    lines = path.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if starts:
        after = lines[starts[-1] + 1 :]
        exception = next((line for line in after if line.strip() and not line[0].isspace()), "")
        if exception:
            return exception.strip()
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory, most often)" if name == "SIGKILL" else ""
        written = last_line(path)
        return f"killed by {name}{hint}" + (f"; last output: {written}" if written else "")
    return last_line(path) or f"exit code {code}"


def wait_for(proc: subprocess.Popen) -> tuple[int, float]:
    """Reap the child with ``wait4``: its exit code and its own maximum RSS in MB."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()  # interrupted: do not leave the step running
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def run_step(spec: dict, run: Run) -> StepResult:
    """Run one step in a fresh process under the memory limit and the run's spill folder."""
    label = spec["label"]
    spill = run.temp / "spill" / label
    spill.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MEDALLION_MEMORY_LIMIT": run.memory_limit, "MEDALLION_TEMP_DIR": str(spill)}
    out, err = run.temp / "logs" / f"{label}.out", run.temp / "logs" / f"{label}.err"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec)], stdout=stdout, stderr=stderr, env=env
        )
        sampler = MemorySampler(proc.pid)
        sampler.start()
        code, self_mb = wait_for(proc)
        sampler.done.set()
        sampler.join()
    figures = reported_figures(out)
    result = StepResult(label=label, ok=figures is not None, process_s=time.perf_counter() - started, self_mb=self_mb)
    result.peak_mb = max(sampler.peak / 2**20, self_mb)
    shutil.rmtree(spill, ignore_errors=True)
    if code != 0 and figures is not None:  # crashed after reporting (seen: while the interpreter shut down)
        result.exit_error = error_line(err, code)
    elif code != 0:
        result.error = error_line(err, code)
    if figures is not None:
        result.seconds = figures.pop("seconds")
        result.figures = figures
    return result


# --- one shape and size: the steps in order -------------------------------------------------


@dataclass
class Run:
    temp: Path
    memory_limit: str
    limit_mb: float
    keep: bool
    cases: tuple[str, ...]


NEEDS_DAY2 = {"scd2_change", "scd1_change", "append", "overwrite", "fact_change"}
SETUP = {"scd2_change": "scd2", "scd1_change": "scd1", "append": "append", "overwrite": "overwrite"}


def progress(what: str, step: StepResult) -> None:
    state = f"{step.seconds:.2f} s, peak {step.peak_mb:,.0f} MB" if step.ok else f"FAILED: {step.error}"
    if step.exit_error:
        state += f" (then at exit: {step.exit_error})"
    print(f"  {what:<44} {state}  {json.dumps(step.figures, default=str) if step.ok else ''}", flush=True)


def land_days(run: Run, shape: str, rows: int, data_dir: Path) -> dict[date, StepResult]:
    days = [DAY1, DAY2] if NEEDS_DAY2 & set(run.cases) else [DAY1]
    landed = {}
    for day in days:
        spec = {
            "step": "land",
            "label": f"{shape}-{rows}-land-{day}",
            "data_dir": str(data_dir),
            "shape": shape,
            "rows": rows,
            "day": day.isoformat(),
        }
        landed[day] = run_step(spec, run)
        progress(f"land {day} ({shape}, {rows:,} keys)", landed[day])
    return landed


def measure_floors(run: Run, shape: str, rows: int, data_dir: Path, days: list[date]) -> dict[date, StepResult]:
    floors = {}
    for day in days:
        target = data_dir / "base" / LINES_TABLE if day == DAY1 else data_dir / "floor" / day.isoformat()
        spec = {
            "step": "floor",
            "label": f"{shape}-{rows}-floor-{day}",
            "landing": str(landing_path(data_dir, shape, day)),
            "target": str(target),
        }
        floors[day] = run_step(spec, run)
        progress(f"floor {day}", floors[day])
    return floors


def load_step(
    run: Run, shape: str, rows: int, data_dir: Path, behaviour: str, day: date, tag: str, table: str | None = None
) -> StepResult:
    spec = {
        "step": "load",
        "label": f"{shape}-{rows}-{tag}",
        "data_dir": str(data_dir),
        "shape": shape,
        "behaviour": behaviour,
        "day": day.isoformat(),
        **({"table": table} if table else {}),
    }
    return run_step(spec, run)


def fact_change_case(run: Run, shape: str, rows: int, data_dir: Path) -> StepResult:
    """A merge fact over an scd1 base table: built from day 1 (every row), then, after the base
    load of day 2, from the rows that day changed; the second build is measured."""
    setup = run_step({"step": "dimension", "label": f"{shape}-{rows}-fact-change-dims", "data_dir": str(data_dir), "rows": rows}, run)
    fact = {"step": "fact", "data_dir": str(data_dir), "shape": shape, "rows": rows, "merge": True}
    steps = [("setup: dim_calendar + 2 loads of SCD2 dim_region", setup)]
    for day in (DAY1, DAY2):  # the loads' clock is the real one, as in a deployment: base rows carry their load time
        if not all(step.ok for _, step in steps):
            break
        base = load_step(run, shape, rows, data_dir, "scd1", day, f"fact-change-base-{day}", table=FACT_BASE)
        steps.append((f"setup: scd1 base load of {day}", base))
        progress(*steps[-1])
        if base.ok:
            build = run_step({**fact, "label": f"{shape}-{rows}-fact-merge-{day}"}, run)
            steps.append((f"fact merge build after {day}", build))
            if day == DAY1:
                progress(*steps[-1])
    failed = [f"{what}: {step.error}" for what, step in steps if not step.ok]
    if failed:
        return StepResult(label="fact_change", ok=False, error=failed[0])
    measured = steps[-1][1]
    measured.figures["full_build_s"] = round(steps[2][1].seconds, 2)
    return measured


def run_case(run: Run, shape: str, rows: int, data_dir: Path, case: str, done: dict[str, StepResult]) -> StepResult:
    """The measured step of ``case``, after its setup (a day-1 load or the dimension) when needed."""
    if case == "scd2_initial":
        return load_step(run, shape, rows, data_dir, "scd2", DAY1, case)
    if case == "fact_change":
        return fact_change_case(run, shape, rows, data_dir)
    if case == "fact":
        setup = run_step(
            {"step": "dimension", "label": f"{shape}-{rows}-fact-setup", "data_dir": str(data_dir), "rows": rows}, run
        )
        progress("setup: dim_calendar + 2 loads of SCD2 dim_region", setup)
        if not setup.ok:
            return StepResult(label=case, ok=False, error=f"setup: {setup.error}")
        return run_step(
            {"step": "fact", "label": f"{shape}-{rows}-fact", "data_dir": str(data_dir), "shape": shape, "rows": rows},
            run,
        )
    behaviour = SETUP[case]
    initial = done.get("scd2_initial") if behaviour == "scd2" else None
    if initial is None:
        initial = load_step(run, shape, rows, data_dir, behaviour, DAY1, f"{case}-setup")
        progress(f"setup: {behaviour} load of day 1", initial)
    if not initial.ok:
        return StepResult(label=case, ok=False, error=f"setup: {initial.error}")
    return load_step(run, shape, rows, data_dir, behaviour, DAY2, case)


def case_order(cases: tuple[str, ...]) -> list[str]:
    return [case for case in CASES if case in cases]


def bench_size(run: Run, shape: str, rows: int) -> list[dict]:
    """All selected cases for one shape and size; the rows of the result table."""
    data_dir = run.temp / f"{shape}-{rows}" / "data"
    print(f"\n{shape}, {rows:,} keys: data in {data_dir}", flush=True)
    landed = land_days(run, shape, rows, data_dir)
    floors = measure_floors(run, shape, rows, data_dir, [d for d, step in landed.items() if step.ok])
    done: dict[str, StepResult] = {}
    results = []
    for case in case_order(run.cases):
        day = DAY1 if case in ("scd2_initial", "fact") else DAY2
        if not landed[day].ok:
            step = StepResult(label=case, ok=False, error=f"landing: {landed[day].error}")
        else:
            step = run_case(run, shape, rows, data_dir, case, done)
        done[case] = step
        progress(case, step)
        results.append(result_row(run, shape, rows, case, step, floors.get(day), landed[day]))
    if not run.keep:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    return results


def result_row(
    run: Run, shape: str, rows: int, case: str, step: StepResult, floor: StepResult | None, land: StepResult
) -> dict:
    read = land.figures.get("rows", rows) if land.ok else rows
    floor_ok = floor is not None and floor.ok
    note = "ok" if step.ok else f"FAILED: {step.error}"
    if step.ok and step.peak_mb > run.limit_mb:
        note = "over limit"
    if step.exit_error:
        note += f"; then at exit: {step.exit_error}"
    return {
        "shape": shape,
        "rows": rows,
        "case": case,
        "ok": step.ok,
        "seconds": step.seconds,
        "rows_per_s": read / step.seconds if step.ok and step.seconds else None,
        "peak_mb": step.peak_mb,
        "self_mb": step.self_mb,
        "process_s": step.process_s,
        "floor_s": floor.seconds if floor_ok else None,
        "floor_peak_mb": floor.peak_mb if floor_ok else None,
        "time_per_floor": step.seconds / floor.seconds if step.ok and floor_ok and floor.seconds else None,
        "rows_read": read,
        "memory_limit": run.memory_limit,
        "note": note,
        "figures": step.figures,
    }


# --- printing -------------------------------------------------------------------------------


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {total_kb / 2**20:.1f} GiB RAM, "
        f"load average {os.getloadavg()[0]:.2f}; Python {platform.python_version()}, "
        f"duckdb {version('duckdb')}, deltalake {version('deltalake')}, pyarrow {version('pyarrow')}"
    )


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEADER = (
    f"{'shape':<7} {'rows':>12} {'case':<13} {'s':>8} {'rows/s':>11} {'peak MB':>8} {'self MB':>8} "
    f"{'floor s':>8} {'floor MB':>8} {'x floor':>7}  note"
)


def table_line(row: dict) -> str:
    return (
        f"{row['shape']:<7} {row['rows']:>12,} {row['case']:<13} {number(row['seconds'], '.2f'):>8} "
        f"{number(row['rows_per_s'], ',.0f'):>11} {row['peak_mb']:>8,.0f} {row['self_mb']:>8,.0f} "
        f"{number(row['floor_s'], '.2f'):>8} {number(row['floor_peak_mb'], ',.0f'):>8} "
        f"{number(row['time_per_floor'], '.1f'):>7}  {row['note']}"
    )


def print_table(rows: list[dict], memory_limit: str) -> None:
    load = os.getloadavg()[0]
    print(f"\nresults (memory limit {memory_limit}; peak MB = all processes of the step; load average now {load:.2f})")
    print(HEADER)
    for row in rows:
        print(table_line(row))


# --- arguments -------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*$")
_BYTES = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B)\s*$", re.IGNORECASE)


def parse_rows(text: str) -> int:
    """``200000``, ``200k``, ``10M``, ``1_000_000``."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a row count like 200k, 10M or 1000000")
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[match[2].lower()]
    return int(float(match[1].replace("_", "")) * scale)


def limit_mb(text: str) -> float:
    """A DuckDB-style size (``3GB`` = 3 * 1000^3 bytes, ``3GiB`` = 3 * 1024^3) in MiB."""
    match = _BYTES.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size like 3GB or 2GiB")
    unit = match[2].upper()
    base = 1024 if "I" in unit else 1000
    return float(match[1]) * base ** "KMGT".index(unit[0]) * base / 2**20


def parse_cases(text: str) -> tuple[str, ...]:
    cases = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    return cases


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=parse_rows, default=1_000_000, help="keys of day 1 (default 1,000,000)")
    parser.add_argument(
        "--sizes", type=lambda t: [parse_rows(s) for s in t.split(",")], help="several sizes: 10M,30M,100M"
    )
    parser.add_argument("--shape", choices=(*SHAPES, "both"), default="both")
    parser.add_argument(
        "--cases", type=parse_cases, default=CASES, help=f"comma-separated, default all: {','.join(CASES)}"
    )
    parser.add_argument("--memory-limit", default="3GB", help="MEDALLION_MEMORY_LIMIT of every step (default 3GB)")
    parser.add_argument(
        "--temp-dir", type=Path, default=None, help="where the run's temp dir is made (default: system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated data, spill folders and logs")
    parser.add_argument("--json", action="store_true", help="also print every result as one JSON line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.child:
        run_child(json.loads(args.child))
        return
    limit = limit_mb(args.memory_limit)
    temp = Path(tempfile.mkdtemp(prefix="medallion-scale-", dir=args.temp_dir))
    run = Run(temp=temp, memory_limit=args.memory_limit, limit_mb=limit, keep=args.keep, cases=args.cases)
    print(f"scale benchmark: memory limit {args.memory_limit} per step, temp dir {temp}")
    print(machine(), flush=True)
    rows: list[dict] = []
    try:
        for size in args.sizes or [args.rows]:
            for shape in SHAPES if args.shape == "both" else (args.shape,):
                rows += bench_size(run, shape, size)
    finally:
        if rows:
            print_table(rows, args.memory_limit)
        if args.json:
            for row in rows:
                print(json.dumps(row, default=str))
        if args.keep:
            print(f"\nkept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
