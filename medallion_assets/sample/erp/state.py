"""The simulation's state, kept in the database beside the tables, and the per-day random streams."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np

from medallion_assets.sample.erp.reference import EXTRACT_TIME, SALTS


@dataclass(frozen=True)
class SampleState:
    """Everything needed to continue the simulation: one row of ``sample_state``."""

    seed: int
    start_date: date
    planned_days: int
    current_day: date
    next_customer_id: int
    next_product_id: int
    next_employee_id: int
    next_order_id: int
    next_order_line_id: int
    customers_new_per_day: float
    customers_deleted_per_day: float
    customer_update_share: float
    products_new_per_day: float
    product_price_changes_per_day: float
    products_deleted_per_day: float
    employees_hired_per_day: float
    employee_changes_per_day: float
    employees_leaving_per_day: float
    order_lines_per_day: float
    order_lines_cancelled_per_day: float
    order_line_corrections_per_day: float
    duplicate_lines_per_day: float
    late_share: float


_STATE_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "date": "DATE"}  # annotations are strings here


def state_ddl() -> str:
    columns = ", ".join(f"{f.name} {_STATE_SQL_TYPES[f.type]} NOT NULL" for f in fields(SampleState))
    return f"CREATE TABLE sample_state ({columns})"


def write_state(con: duckdb.DuckDBPyConnection, state: SampleState) -> None:
    names = [f.name for f in fields(SampleState)]
    con.execute("DELETE FROM sample_state")
    con.execute(
        f"INSERT INTO sample_state ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        list(astuple(state)),
    )
    con.execute("UPDATE sample_clock SET now_ts = ?", [datetime.combine(state.current_day, EXTRACT_TIME)])


def read_state(con: duckdb.DuckDBPyConnection, db_path: Path) -> SampleState:
    try:
        rows = con.sql("SELECT * FROM sample_state").fetchall()
        columns = [d[0] for d in con.sql("SELECT * FROM sample_state LIMIT 0").description]
    except duckdb.CatalogException as exc:
        raise ValueError(f"{db_path} is not a sample ERP database: it has no sample_state table") from exc
    if len(rows) != 1:
        raise ValueError(f"{db_path}: sample_state must hold exactly one row, found {len(rows)}")
    values = dict(zip(columns, rows[0], strict=True))
    return SampleState(**{f.name: values[f.name] for f in fields(SampleState)})


def plan_sizes(*, seed: int, start_date: date, days: int, customers: int, order_lines: int) -> tuple[SampleState, dict[str, int]]:
    """Daily rates and day-1 sizes so that day ``days`` ends near the asked totals.

    A share of the totals (growing with the horizon, capped so most rows are history) arrives
    day by day; the rates do not change when the simulation runs past the planned horizon.
    """
    steps = max(days - 1, 1)
    customers_net = customers * min(0.25, 0.01 * steps) / steps
    customers_deleted = max(0.3, customers * 0.00005)
    lines_net = order_lines * min(0.4, 0.02 * steps) / steps
    lines_new = lines_net / 0.99
    products = max(40, min(2000, customers // 50))
    employees = max(10, min(500, customers // 500))
    state = SampleState(
        seed=seed,
        start_date=start_date,
        planned_days=days,
        current_day=start_date,
        next_customer_id=1,
        next_product_id=1,
        next_employee_id=1,
        next_order_id=1,
        next_order_line_id=1,
        customers_new_per_day=customers_net + customers_deleted,
        customers_deleted_per_day=customers_deleted,
        customer_update_share=0.005,
        products_new_per_day=max(0.3, products * 0.001),
        product_price_changes_per_day=max(0.5, products * 0.005),
        products_deleted_per_day=0.15,
        employees_hired_per_day=max(0.05, employees * 0.0005),  # ~15% a year, headcount slowly grows
        employee_changes_per_day=max(0.1, employees * 0.001),
        employees_leaving_per_day=max(0.03, employees * 0.0004),
        order_lines_per_day=lines_new,
        order_lines_cancelled_per_day=lines_new - lines_net,
        order_line_corrections_per_day=max(0.5, lines_new * 0.01),
        duplicate_lines_per_day=min(5.0, max(0.2, lines_new * 0.01)),
        late_share=0.04,
    )
    sizes = {
        "customers": max(10, round(customers - customers_net * (days - 1))),
        "order_lines": max(0, round(order_lines - lines_net * (days - 1))),
        "products": products,
        "employees": employees,
    }
    return state, sizes


def day_rng(state: SampleState, day: date, component: str) -> np.random.Generator:
    return np.random.default_rng([state.seed, (day - state.start_date).days, SALTS[component]])


def daily_count(rate: float, state: SampleState, day: date) -> int:
    """Today's share of a steady volume: the running total stays at ``rate * days`` exactly.

    Used for the big flows (new customers and order lines, deletes) so the planned totals are
    met at any size; rare events use Poisson draws instead.
    """
    k = (day - state.start_date).days
    return int(np.floor(rate * k + 0.5) - np.floor(rate * (k - 1) + 0.5))
