"""Create the database as of its first day: the tables and years of history before it."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from medallion_assets.sample.erp.arrays import LOC_REGION, column_values, insert_rows, location_index, np_day, times_on
from medallion_assets.sample.erp.reference import (
    DDL,
    EXTRACT_TIME,
    HEAD_TITLE,
    HISTORY_CUSTOMER_DAYS,
    HISTORY_ORDER_DAYS,
    MANAGER_TITLE,
    PROSPECT,
    REGIONS,
    REP_TITLES,
    ship_lag,
)
from medallion_assets.sample.erp.rows import (
    OrderPools,
    customer_rows,
    draw_order_lines,
    employee_rows,
    order_line_rows,
    product_rows,
    split_into_orders,
    with_duplicates,
)
from medallion_assets.sample.erp.state import SampleState, day_rng, plan_sizes, state_ddl, write_state


def create_erp_database(db_path: Path, *, seed: int, start_date: date, days: int, customers: int, order_lines: int) -> None:
    """Write the database as it stands at the end of day ``start_date`` (clock = start_date 22:00).

    Sized so that after ``days - 1`` calls of advance the totals are about ``customers`` customers
    and ``order_lines`` distinct order lines: most rows exist on day 1 as history (order dates up
    to two years back), the rest arrive day by day. Refuses to overwrite an existing file
    (FileExistsError naming it). Builds in a dot-prefixed temp file in the same folder, then
    links it into place, so a reader never sees half a database.
    """
    db_path = Path(db_path)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if customers < 10:
        raise ValueError(f"customers must be at least 10, got {customers}")
    if order_lines < 0:
        raise ValueError(f"order_lines must not be negative, got {order_lines}")
    if db_path.exists():
        raise FileExistsError(f"{db_path} already exists; refusing to overwrite a sample ERP database")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    temp = db_path.parent / f".tmp-{uuid.uuid4().hex}-{db_path.name}"
    try:
        con = duckdb.connect(str(temp))
        try:
            for statement in (*DDL, state_ddl()):
                con.execute(statement)
            con.execute("INSERT INTO sample_clock VALUES (?)", [datetime.combine(start_date, EXTRACT_TIME)])
            state, sizes = plan_sizes(seed=seed, start_date=start_date, days=days, customers=customers, order_lines=order_lines)
            state = _write_history(con, state, sizes)
            write_state(con, state)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        _publish_no_clobber(temp, db_path)
    finally:
        for leftover in (temp, temp.with_name(temp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _publish_no_clobber(temp: Path, final: Path) -> None:
    """Give the finished file its name, never replacing a file that appeared meanwhile."""
    refused = FileExistsError(f"{final} already exists; refusing to overwrite a sample ERP database")
    try:
        os.link(temp, final)  # atomic and fails if the name exists
    except FileExistsError:
        raise refused from None
    except OSError:  # file systems without hard links: check, then rename
        if final.exists():
            raise refused from None
        os.replace(temp, final)


def _write_history(con: duckdb.DuckDBPyConnection, state: SampleState, sizes: dict[str, int]) -> SampleState:
    """Day 1: employees, products, customers and two years of orders, all before the clock."""
    employees, rep_regions = _history_employees(con, state, sizes["employees"])
    products = _history_products(con, state, sizes["products"])
    customers, created_day = _history_customers(con, state, sizes["customers"])
    reps = column_values(employees, "employee_id")[1 + len(REGIONS) :]
    orders = _history_order_lines(
        con,
        state,
        sizes["order_lines"],
        customers=customers,
        created_day=created_day,
        products=products,
        reps=reps,
        rep_regions=rep_regions,
    )
    return replace(
        state,
        next_customer_id=sizes["customers"] + 1,
        next_product_id=sizes["products"] + 1,
        next_employee_id=sizes["employees"] + 1,
        next_order_id=orders + 1,
        next_order_line_id=sizes["order_lines"] + 1,
    )


def _history_employees(con: duckdb.DuckDBPyConnection, state: SampleState, n_emp: int) -> tuple[pa.Table, np.ndarray]:
    """A head, one manager per region, sales reps (every region has at least one); with the reps' regions."""
    day = state.start_date
    start = np_day(day)
    rng = day_rng(state, day, "employee")
    n_regions = len(REGIONS)
    emp_ids = np.arange(1, n_emp + 1, dtype=np.int64)
    n_reps = n_emp - 1 - n_regions
    rep_regions = np.concatenate([np.arange(n_regions), rng.integers(0, n_regions, max(n_reps - n_regions, 0))])[:n_reps]
    regions = np.concatenate([[0], np.arange(n_regions), rep_regions]).astype(np.int64)
    rep_titles = rng.choice(len(REP_TITLES), size=n_reps, p=(0.45, 0.25, 0.2, 0.1))
    titles = [HEAD_TITLE] + [MANAGER_TITLE] * n_regions + [REP_TITLES[t] for t in rep_titles]
    managers: list[int | None] = [None] + [1] * n_regions + [int(2 + r) for r in rep_regions]
    seniority = np.concatenate([[3650], rng.integers(1500, 3000, n_regions), rng.integers(30, 2500, n_reps)])
    hire = start - seniority.astype("timedelta64[D]")
    changed = hire + (rng.random(n_emp) * (seniority + 1)).astype("timedelta64[D]")
    employees = employee_rows(rng, emp_ids, titles, regions=regions, managers=managers, hire_dates=hire, modified_at=times_on(rng, changed))
    insert_rows(con, "employee", employees)
    return employees, rep_regions


def _history_products(con: duckdb.DuckDBPyConnection, state: SampleState, n_prod: int) -> pa.Table:
    day = state.start_date
    start = np_day(day)
    rng = day_rng(state, day, "product")
    prod_days = start - rng.integers(0, HISTORY_ORDER_DAYS, n_prod).astype("timedelta64[D]")
    products = product_rows(rng, np.arange(1, n_prod + 1, dtype=np.int64), times_on(rng, prod_days))
    insert_rows(con, "product", products)
    return products


def _history_customers(con: duckdb.DuckDBPyConnection, state: SampleState, n_cust: int) -> tuple[pa.Table, np.ndarray]:
    """Customers whose ids follow creation time; about 30% were changed since. With their creation days."""
    day = state.start_date
    start = np_day(day)
    rng = day_rng(state, day, "customer")
    age = rng.integers(0, HISTORY_CUSTOMER_DAYS + 1, n_cust)
    created = np.sort(times_on(rng, start - age.astype("timedelta64[D]")))
    created_day = created.astype("datetime64[D]")
    span = (start - created_day).astype(np.int64)
    later_day = created_day + (rng.random(n_cust) * (span + 1)).astype("timedelta64[D]")
    later = np.maximum(times_on(rng, later_day), created)
    modified = np.where(rng.random(n_cust) < 0.3, later, created)
    customers = customer_rows(rng, np.arange(1, n_cust + 1, dtype=np.int64), created, modified)
    insert_rows(con, "customer", customers)
    return customers, created_day


def _history_order_lines(
    con: duckdb.DuckDBPyConnection,
    state: SampleState,
    n_lines: int,
    *,
    customers: pa.Table,
    created_day: np.ndarray,
    products: pa.Table,
    reps: np.ndarray,
    rep_regions: np.ndarray,
) -> int:
    """Orders spread over two years, each by a customer that existed by then; returns the number of orders."""
    day = state.start_date
    start = np_day(day)
    rng = day_rng(state, day, "order_line")
    counts = split_into_orders(rng, n_lines)
    order_dates = np.sort(start - rng.integers(0, HISTORY_ORDER_DAYS + 1, len(counts)).astype("timedelta64[D]"))
    segment = column_values(customers, "segment")
    buying = np.flatnonzero(segment != PROSPECT)
    if len(buying) == 0:
        buying = np.arange(customers.num_rows)
    pools = OrderPools(
        customer_ids=column_values(customers, "customer_id")[buying],
        customer_regions=LOC_REGION[location_index(customers.column("city"))][buying],
        product_ids=column_values(products, "product_id"),
        product_cents=np.round(column_values(products, "list_price").astype(float) * 100).astype(np.int64),
        rep_ids=reps,
        rep_regions=rep_regions.astype(np.int64),
    )
    existing = np.searchsorted(created_day[buying], order_dates, side="right")
    pick = (rng.random(len(order_dates)) * np.maximum(existing, 1)).astype(np.int64)
    lines = draw_order_lines(
        rng, pools, first_order_id=1, first_line_id=1, order_dates=order_dates, order_customer_index=pick, line_counts=counts
    )
    order_ids = 1 + np.arange(len(counts), dtype=np.int64)
    ship = order_dates + ship_lag(order_ids).astype("timedelta64[D]")
    shipped = ship <= start
    last_change = np.where(shipped, ship, order_dates)
    modified_per_order = times_on(rng, last_change)
    line_order = lines["line_order"]
    rows = order_line_rows(lines, ship[line_order], shipped[line_order], modified_per_order[line_order])
    rows = with_duplicates(rng, rows, 2 + min(n_lines // 5_000, 20))
    insert_rows(con, "sales_order_line", rows)
    return len(order_ids)
