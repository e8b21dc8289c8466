"""The sample ERP: a DuckDB database that behaves like a source system changing day by day.

The landing layer needs a source that changes the way real ones do: inserts, updates that make
SCD2 history, hard deletes, rows that arrive late and the occasional double-posted row. This
module builds such a database as of a first day (mostly history) and moves it forward one
simulated day at a time.

Determinism: the changes of day ``k`` (``k = day - start_date``) are drawn from
``numpy.random.default_rng([seed, k, salt])`` and from the database state, always read in key
order, so ``advance(days=2)`` equals two ``advance(days=1)`` and equal arguments give equal
content. Every day is one DuckDB transaction: a crash leaves the previous day intact.

Rules the simulation keeps (others rely on them):
- every row changed on day D has ``modified_at`` on D between 06:00:00 and 21:59:59, except
  late-arriving new order lines and customer changes, dated D-1 or D-2 but written on D;
- order lines only reference existing customers, products and employees: only customers and
  products without order lines are hard-deleted, and a leaving employee's order lines are
  reassigned to a colleague of the same region (``employee_id`` and ``modified_at`` change);
- customers in segment ``Prospect`` place no orders (they are the usual delete candidates);
- all lines of an order ship together, ``1 + (order_id * 2654435761) % 5`` days after the
  order date at the earliest, on the first simulated day that is not earlier;
- exact duplicate order lines are updated and deleted together, so they stay exact duplicates.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CATEGORIES",
    "CATEGORY_PRICE_RANGE",
    "CATEGORY_WEIGHTS",
    "COUNTRY_REGION",
    "LOCATIONS",
    "REGIONS",
    "SEGMENTS",
    "SUBCATEGORIES",
    "SampleState",
    "advance_erp_database",
    "create_erp_database",
    "current_source_day",
    "read_sample_state",
]
# --- reference data (shared with finance.py and useful to tests and curated models) ----------

REGIONS: tuple[str, ...] = ("North America", "Latin America", "Europe", "Asia Pacific")

# (city, country, region); city names are unique.
LOCATIONS: tuple[tuple[str, str, str], ...] = (
    ("New York", "United States", "North America"),
    ("Chicago", "United States", "North America"),
    ("Seattle", "United States", "North America"),
    ("Austin", "United States", "North America"),
    ("Toronto", "Canada", "North America"),
    ("Vancouver", "Canada", "North America"),
    ("Mexico City", "Mexico", "Latin America"),
    ("Sao Paulo", "Brazil", "Latin America"),
    ("Buenos Aires", "Argentina", "Latin America"),
    ("Bogota", "Colombia", "Latin America"),
    ("Santiago", "Chile", "Latin America"),
    ("London", "United Kingdom", "Europe"),
    ("Manchester", "United Kingdom", "Europe"),
    ("Paris", "France", "Europe"),
    ("Berlin", "Germany", "Europe"),
    ("Munich", "Germany", "Europe"),
    ("Amsterdam", "Netherlands", "Europe"),
    ("Madrid", "Spain", "Europe"),
    ("Sydney", "Australia", "Asia Pacific"),
    ("Melbourne", "Australia", "Asia Pacific"),
    ("Tokyo", "Japan", "Asia Pacific"),
    ("Singapore", "Singapore", "Asia Pacific"),
    ("Mumbai", "India", "Asia Pacific"),
    ("Seoul", "South Korea", "Asia Pacific"),
)
COUNTRY_REGION: dict[str, str] = {country: region for _, country, region in LOCATIONS}

CATEGORIES: tuple[str, ...] = ("Bikes", "Components", "Clothing", "Accessories")
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "Bikes": ("Road Bikes", "Mountain Bikes", "Touring Bikes", "E-Bikes"),
    "Components": ("Frames", "Wheels", "Brakes", "Drivetrains", "Handlebars", "Saddles"),
    "Clothing": ("Jerseys", "Shorts", "Gloves", "Jackets", "Socks"),
    "Accessories": ("Helmets", "Lights", "Locks", "Bottles", "Pumps", "Bags"),
}
# Share of products per category and list price range (USD) per category.
CATEGORY_WEIGHTS: tuple[float, ...] = (0.2, 0.35, 0.2, 0.25)
CATEGORY_PRICE_RANGE: dict[str, tuple[float, float]] = {
    "Bikes": (450.0, 4500.0),
    "Components": (20.0, 900.0),
    "Clothing": (15.0, 180.0),
    "Accessories": (8.0, 250.0),
}

SEGMENTS: tuple[str, ...] = ("Consumer", "Corporate", "Small Business", "Prospect")
PROSPECT = "Prospect"
HEAD_TITLE = "Chief Sales Officer"
MANAGER_TITLE = "Regional Sales Manager"
REP_TITLES: tuple[str, ...] = ("Sales Representative", "Senior Sales Representative", "Account Manager", "Key Account Manager")

# Order-level discounts in percent and their probabilities; quantities are 1 + geometric.
DISCOUNTS = np.array([0, 5, 10, 15], dtype=np.int64)
DISCOUNT_P = (0.6, 0.2, 0.15, 0.05)
QUANTITY_P = 0.45
MAX_QUANTITY = 20

EXTRACT_TIME = time(22, 0)  # the nightly extract: the clock stands here at the end of a day
WORKDAY_START_S = 6 * 3600  # changes happen between 06:00:00 and 21:59:59
WORKDAY_END_S = 22 * 3600
HISTORY_ORDER_DAYS = 730
HISTORY_CUSTOMER_DAYS = 1095
MAX_LATE_DAYS = 2

_FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
    "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Aisha", "Bruno", "Chloe", "Diego", "Emma", "Felix", "Hana", "Ivan", "Julia", "Kofi",
)
_LAST_NAMES = (
    "Smith", "Garcia", "Muller", "Rossi", "Dubois", "Tanaka", "Kim", "Silva", "Novak", "Jensen", "Khan",
    "Lopez", "Brown", "Schmidt", "Moreau", "Sato", "Chen", "Costa", "Ivanova", "Larsen", "Patel", "Martin",
    "Wilson", "Becker", "Fontaine", "Suzuki", "Park", "Santos", "Horvat", "Nielsen", "Ali", "Torres",
)
_EMAIL_DOMAINS = ("example.com", "mail.example", "inbox.example", "corp.example", "post.example")
_MODEL_WORDS = ("Aero", "Summit", "Trail", "Urban", "Pro", "Sport", "Classic", "Apex", "Nova", "Ridge", "Velo", "Storm")

# One stream of random numbers per component, so adding draws to one does not shift the others.
_SALTS = {
    "employee": 11, "product": 12, "customer": 13, "order_line": 14,
    "customer_delete": 21, "customer_update": 22, "customer_new": 23,
    "product_delete": 31, "product_price": 32, "product_new": 33,
    "employee_change": 41, "employee_hire": 42, "employee_leave": 43,
    "ship": 51, "correction": 52, "cancel": 53, "order_new": 54, "duplicate": 55,
}

_DDL = (
    """CREATE TABLE customer (
        customer_id BIGINT PRIMARY KEY, customer_name VARCHAR NOT NULL, email VARCHAR, segment VARCHAR,
        city VARCHAR, country VARCHAR, created_at TIMESTAMP NOT NULL, modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE product (
        product_id BIGINT PRIMARY KEY, product_name VARCHAR NOT NULL, category VARCHAR, subcategory VARCHAR,
        list_price DECIMAL(12,2), modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE employee (
        employee_id BIGINT PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, title VARCHAR, region VARCHAR,
        manager_id BIGINT, hire_date DATE, modified_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE sales_order_line (
        order_line_id BIGINT NOT NULL, order_id BIGINT NOT NULL, line_number INTEGER NOT NULL,
        order_date DATE NOT NULL, ship_date DATE, customer_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
        employee_id BIGINT NOT NULL, quantity INTEGER NOT NULL, unit_price DECIMAL(12,2) NOT NULL,
        amount DECIMAL(14,2) NOT NULL, modified_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE sample_clock (now_ts TIMESTAMP NOT NULL)",
)

_SHIP_LAG_SQL = "(1 + (order_id * 2654435761) % 5)"


def _ship_lag(order_ids: np.ndarray) -> np.ndarray:
    """Days from order to earliest shipping, a fixed function of the order id (same as the SQL)."""
    return 1 + (order_ids.astype(np.int64) * 2654435761) % 5


# --- simulation state --------------------------------------------------------------------------


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


def _state_ddl() -> str:
    columns = ", ".join(f"{f.name} {_STATE_SQL_TYPES[f.type]} NOT NULL" for f in fields(SampleState))
    return f"CREATE TABLE sample_state ({columns})"


def _write_state(con: duckdb.DuckDBPyConnection, state: SampleState) -> None:
    names = [f.name for f in fields(SampleState)]
    con.execute("DELETE FROM sample_state")
    con.execute(
        f"INSERT INTO sample_state ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        list(astuple(state)),
    )
    con.execute("UPDATE sample_clock SET now_ts = ?", [datetime.combine(state.current_day, EXTRACT_TIME)])


def _read_state(con: duckdb.DuckDBPyConnection, db_path: Path) -> SampleState:
    try:
        rows = con.sql("SELECT * FROM sample_state").fetchall()
        columns = [d[0] for d in con.sql("SELECT * FROM sample_state LIMIT 0").description]
    except duckdb.CatalogException as exc:
        raise ValueError(f"{db_path} is not a sample ERP database: it has no sample_state table") from exc
    if len(rows) != 1:
        raise ValueError(f"{db_path}: sample_state must hold exactly one row, found {len(rows)}")
    values = dict(zip(columns, rows[0], strict=True))
    return SampleState(**{f.name: values[f.name] for f in fields(SampleState)})


def _plan(*, seed: int, start_date: date, days: int, customers: int, order_lines: int) -> tuple[SampleState, dict[str, int]]:
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


def _rng(state: SampleState, day: date, component: str) -> np.random.Generator:
    return np.random.default_rng([state.seed, (day - state.start_date).days, _SALTS[component]])


def _daily_count(rate: float, state: SampleState, day: date) -> int:
    """Today's share of a steady volume: the running total stays at ``rate * days`` exactly.

    Used for the big flows (new customers and order lines, deletes) so the planned totals are
    met at any size; rare events use Poisson draws instead.
    """
    k = (day - state.start_date).days
    return int(np.floor(rate * k + 0.5) - np.floor(rate * (k - 1) + 0.5))


# --- small array helpers -------------------------------------------------------------------------


def _np_day(value: date) -> np.datetime64:
    return np.datetime64(value, "D")


def _times_on(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """A random working-hours timestamp (whole seconds) on each given day."""
    seconds = rng.integers(WORKDAY_START_S, WORKDAY_END_S, size=len(days))
    return days.astype("datetime64[D]").astype("datetime64[us]") + seconds.astype("timedelta64[s]")


def _late_offsets(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """0 for on-time rows, 1 or 2 days back for the late-arriving share."""
    late = rng.random(n) < share
    back = rng.integers(1, MAX_LATE_DAYS + 1, size=n)
    return np.where(late, back, 0)


def _decimal(cents: np.ndarray, precision: int) -> pa.Array:
    """Exact decimal(precision, 2) from integer cents (no float rounding on the way)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype="<i8")
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, 2), len(cents), [None, pa.py_buffer(words.tobytes())])


def _take(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(index, pa.int64()))


def _column(table: pa.Table, name: str) -> np.ndarray:
    return _np(table.column(name))


def _np(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.to_numpy(zero_copy_only=False)


def _choose(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` distinct elements of ``pool`` (which is in key order), sorted."""
    k = min(int(k), len(pool))
    if k <= 0:
        return pool[:0]
    return np.sort(rng.choice(pool, size=k, replace=False))


def _query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    return con.sql(sql, params=params).to_arrow_table()


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def _insert(con: duckdb.DuckDBPyConnection, table_name: str, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    with _registered(con, "sample_batch", rows):
        con.execute(f'INSERT INTO "{table_name}" BY NAME SELECT * FROM sample_batch')


def _location_index(cities: pa.Array | pa.ChunkedArray) -> np.ndarray:
    index = pc.index_in(cities, value_set=pa.array([c for c, _, _ in LOCATIONS]))
    return _np(pc.fill_null(index, 0)).astype(np.int64)


_LOC_REGION = np.array([REGIONS.index(r) for _, _, r in LOCATIONS], dtype=np.int64)


# --- row builders -----------------------------------------------------------------------------


def _customer_rows(
    rng: np.random.Generator, ids: np.ndarray, created_at: np.ndarray, modified_at: np.ndarray
) -> pa.Table:
    n = len(ids)
    first = _take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n))
    last = _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n))
    segment = rng.choice(len(SEGMENTS), size=n, p=(0.55, 0.2, 0.15, 0.1))
    location = rng.integers(0, len(LOCATIONS), n)
    domain = _take(_EMAIL_DOMAINS, rng.integers(0, len(_EMAIL_DOMAINS), n))
    id_text = pc.cast(pa.array(ids, pa.int64()), pa.string())
    local = pc.utf8_lower(pc.binary_join_element_wise(first, ".", last, id_text, ""))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "customer_name": pc.binary_join_element_wise(first, last, " "),
            "email": pc.binary_join_element_wise(local, "@", domain, ""),
            "segment": _take(SEGMENTS, segment),
            "city": _take(tuple(c for c, _, _ in LOCATIONS), location),
            "country": _take(tuple(c for _, c, _ in LOCATIONS), location),
            "created_at": pa.array(created_at, pa.timestamp("us")),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def _product_rows(rng: np.random.Generator, ids: np.ndarray, modified_at: np.ndarray) -> pa.Table:
    n = len(ids)
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS)
    sub_counts = np.array([len(SUBCATEGORIES[c]) for c in CATEGORIES])
    sub_offsets = np.concatenate([[0], np.cumsum(sub_counts)[:-1]])
    flat_subs = tuple(s for c in CATEGORIES for s in SUBCATEGORIES[c])
    sub = sub_offsets[category] + (rng.random(n) * sub_counts[category]).astype(np.int64)
    low = np.array([CATEGORY_PRICE_RANGE[c][0] for c in CATEGORIES])[category]
    high = np.array([CATEGORY_PRICE_RANGE[c][1] for c in CATEGORIES])[category]
    dollars = np.maximum(1, np.round(np.exp(rng.uniform(np.log(low), np.log(high))))).astype(np.int64)
    model = _take(_MODEL_WORDS, rng.integers(0, len(_MODEL_WORDS), n))
    number = pc.cast(pa.array(rng.integers(100, 1000, n), pa.int64()), pa.string())
    subcategory = _take(flat_subs, sub)
    return pa.table(
        {
            "product_id": pa.array(ids, pa.int64()),
            "product_name": pc.binary_join_element_wise(subcategory, model, number, " "),
            "category": _take(CATEGORIES, category),
            "subcategory": subcategory,
            "list_price": _decimal(dollars * 100 - 1, 12),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def _employee_rows(
    rng: np.random.Generator,
    ids: np.ndarray,
    titles: list[str],
    regions: np.ndarray,
    managers: list[int | None],
    hire_dates: np.ndarray,
    modified_at: np.ndarray,
) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "employee_id": pa.array(ids, pa.int64()),
            "first_name": _take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n)),
            "last_name": _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n)),
            "title": pa.array(titles, pa.string()),
            "region": _take(REGIONS, regions),
            "manager_id": pa.array(managers, pa.int64()),
            "hire_date": pa.array(hire_dates.astype("datetime64[D]"), pa.date32()),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


@dataclass
class _OrderPools:
    """What new orders may reference: non-prospect customers, products and sales reps."""

    customer_ids: np.ndarray
    customer_regions: np.ndarray
    product_ids: np.ndarray
    product_cents: np.ndarray
    rep_ids: np.ndarray
    rep_regions: np.ndarray


def _order_lines(
    rng: np.random.Generator,
    pools: _OrderPools,
    *,
    first_order_id: int,
    first_line_id: int,
    order_dates: np.ndarray,
    order_customer_index: np.ndarray,
    line_counts: np.ndarray,
) -> dict[str, np.ndarray]:
    """Lines of new orders: products, quantities, prices and the customer's regional rep."""
    n_orders = len(order_dates)
    n_lines = int(line_counts.sum())
    order_ids = first_order_id + np.arange(n_orders, dtype=np.int64)
    line_order = np.repeat(np.arange(n_orders), line_counts)
    first_line_of_order = np.cumsum(line_counts) - line_counts
    line_number = np.arange(n_lines) - first_line_of_order[line_order] + 1

    customers = pools.customer_ids[order_customer_index]
    regions = pools.customer_regions[order_customer_index]
    employees = np.empty(n_orders, dtype=np.int64)
    for region in range(len(REGIONS)):
        mask = regions == region
        reps = pools.rep_ids[pools.rep_regions == region]
        if len(reps) == 0:
            reps = pools.rep_ids
        employees[mask] = reps[rng.integers(0, len(reps), int(mask.sum()))]

    product_index = rng.integers(0, len(pools.product_ids), n_lines)
    discount = rng.choice(DISCOUNTS, size=n_orders, p=DISCOUNT_P)[line_order]
    unit_cents = (pools.product_cents[product_index] * (100 - discount) + 50) // 100
    quantity = np.minimum(rng.geometric(QUANTITY_P, n_lines), MAX_QUANTITY).astype(np.int64)
    return {
        "order_line_id": first_line_id + np.arange(n_lines, dtype=np.int64),
        "order_id": order_ids[line_order],
        "line_number": line_number.astype(np.int32),
        "order_date": order_dates.astype("datetime64[D]")[line_order],
        "customer_id": customers[line_order],
        "product_id": pools.product_ids[product_index],
        "employee_id": employees[line_order],
        "quantity": quantity.astype(np.int32),
        "unit_cents": unit_cents,
        "line_order": line_order,
    }


def _split_into_orders(rng: np.random.Generator, n_lines: int) -> np.ndarray:
    """Line counts (1-5) of orders that hold exactly ``n_lines`` lines (the last one is cut)."""
    if n_lines <= 0:
        return np.zeros(0, dtype=np.int64)
    counts = rng.integers(1, 6, n_lines)  # never fewer lines than asked: each order has >= 1
    n_orders = int(np.searchsorted(np.cumsum(counts), n_lines)) + 1
    counts = counts[:n_orders].copy()
    counts[-1] -= int(counts.sum()) - n_lines
    return counts


def _order_line_rows(lines: dict[str, np.ndarray], ship_date: np.ndarray, shipped: np.ndarray, modified_at: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "order_line_id": pa.array(lines["order_line_id"], pa.int64()),
            "order_id": pa.array(lines["order_id"], pa.int64()),
            "line_number": pa.array(lines["line_number"], pa.int32()),
            "order_date": pa.array(lines["order_date"], pa.date32()),
            "ship_date": pa.array(ship_date.astype("datetime64[D]"), pa.date32(), mask=~shipped),
            "customer_id": pa.array(lines["customer_id"], pa.int64()),
            "product_id": pa.array(lines["product_id"], pa.int64()),
            "employee_id": pa.array(lines["employee_id"], pa.int64()),
            "quantity": pa.array(lines["quantity"], pa.int32()),
            "unit_price": _decimal(lines["unit_cents"], 12),
            "amount": _decimal(lines["unit_cents"] * lines["quantity"].astype(np.int64), 14),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def _with_duplicates(rng: np.random.Generator, rows: pa.Table, count: int) -> pa.Table:
    """Append exact copies of ``count`` rows: the ERP's double-post glitch."""
    count = min(int(count), rows.num_rows)
    if count == 0:
        return rows
    picked = np.sort(rng.choice(rows.num_rows, size=count, replace=False))
    return pa.concat_tables([rows, rows.take(pa.array(picked))])


# --- create --------------------------------------------------------------------------------------


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
            for statement in (*_DDL, _state_ddl()):
                con.execute(statement)
            con.execute("INSERT INTO sample_clock VALUES (?)", [datetime.combine(start_date, EXTRACT_TIME)])
            state, sizes = _plan(seed=seed, start_date=start_date, days=days, customers=customers, order_lines=order_lines)
            state = _write_history(con, state, sizes)
            _write_state(con, state)
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
    day = state.start_date
    start = _np_day(day)

    # Employees: a head, one manager per region, sales reps (every region has at least one).
    rng = _rng(state, day, "employee")
    n_emp = sizes["employees"]
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
    employees = _employee_rows(rng, emp_ids, titles, regions, managers, hire, _times_on(rng, changed))
    _insert(con, "employee", employees)

    # Products.
    rng = _rng(state, day, "product")
    n_prod = sizes["products"]
    prod_days = start - rng.integers(0, HISTORY_ORDER_DAYS, n_prod).astype("timedelta64[D]")
    products = _product_rows(rng, np.arange(1, n_prod + 1, dtype=np.int64), _times_on(rng, prod_days))
    _insert(con, "product", products)

    # Customers: ids follow creation time; about 30% were changed since.
    rng = _rng(state, day, "customer")
    n_cust = sizes["customers"]
    age = rng.integers(0, HISTORY_CUSTOMER_DAYS + 1, n_cust)
    created = np.sort(_times_on(rng, start - age.astype("timedelta64[D]")))
    created_day = created.astype("datetime64[D]")
    span = (start - created_day).astype(np.int64)
    later_day = created_day + (rng.random(n_cust) * (span + 1)).astype("timedelta64[D]")
    later = np.maximum(_times_on(rng, later_day), created)
    modified = np.where(rng.random(n_cust) < 0.3, later, created)
    customers = _customer_rows(rng, np.arange(1, n_cust + 1, dtype=np.int64), created, modified)
    _insert(con, "customer", customers)

    # Order lines: orders spread over two years, each by a customer that existed by then.
    rng = _rng(state, day, "order_line")
    n_lines = sizes["order_lines"]
    counts = _split_into_orders(rng, n_lines)
    order_dates = np.sort(start - rng.integers(0, HISTORY_ORDER_DAYS + 1, len(counts)).astype("timedelta64[D]"))
    segment = _column(customers, "segment")
    buying = np.flatnonzero(segment != PROSPECT)
    if len(buying) == 0:
        buying = np.arange(n_cust)
    pools = _OrderPools(
        customer_ids=_column(customers, "customer_id")[buying],
        customer_regions=_LOC_REGION[_location_index(customers.column("city"))][buying],
        product_ids=_column(products, "product_id"),
        product_cents=np.round(_column(products, "list_price").astype(float) * 100).astype(np.int64),
        rep_ids=emp_ids[1 + n_regions :],
        rep_regions=rep_regions.astype(np.int64),
    )
    existing = np.searchsorted(created_day[buying], order_dates, side="right")
    pick = (rng.random(len(order_dates)) * np.maximum(existing, 1)).astype(np.int64)
    lines = _order_lines(
        rng, pools, first_order_id=1, first_line_id=1, order_dates=order_dates, order_customer_index=pick, line_counts=counts
    )
    order_ids = 1 + np.arange(len(counts), dtype=np.int64)
    ship = order_dates + _ship_lag(order_ids).astype("timedelta64[D]")
    shipped = ship <= start
    last_change = np.where(shipped, ship, order_dates)
    modified_per_order = _times_on(rng, last_change)
    line_order = lines["line_order"]
    rows = _order_line_rows(lines, ship[line_order], shipped[line_order], modified_per_order[line_order])
    rows = _with_duplicates(rng, rows, 2 + min(n_lines // 5_000, 20))
    _insert(con, "sales_order_line", rows)

    return replace(
        state,
        next_customer_id=n_cust + 1,
        next_product_id=n_prod + 1,
        next_employee_id=n_emp + 1,
        next_order_id=len(order_ids) + 1,
        next_order_line_id=n_lines + 1,
    )


# --- advance -------------------------------------------------------------------------------------


def advance_erp_database(db_path: Path, *, days: int = 1) -> list[date]:
    """Move the source forward by ``days`` simulated days; return the days simulated.

    Each day is one transaction; its changes depend only on (seed, day) and the state, so
    advancing in steps equals advancing at once.
    """
    db_path = Path(db_path)
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if not db_path.is_file():
        raise FileNotFoundError(f"no sample ERP database at {db_path}")
    simulated: list[date] = []
    con = duckdb.connect(str(db_path))
    try:
        state = _read_state(con, db_path)
        for _ in range(days):
            con.execute("BEGIN TRANSACTION")
            try:
                state = _simulate_day(con, state, state.current_day + timedelta(days=1))
                _write_state(con, state)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            simulated.append(state.current_day)
    finally:
        con.close()
    return simulated


def current_source_day(db_path: Path) -> date:
    """The simulated day the source clock is in (the day of ``sample_clock.now_ts``)."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FileNotFoundError(f"no sample ERP database at {db_path}")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        try:
            rows = con.sql("SELECT now_ts FROM sample_clock").fetchall()
        except duckdb.CatalogException as exc:
            raise ValueError(f"{db_path} is not a sample ERP database: it has no sample_clock table") from exc
    finally:
        con.close()
    if len(rows) != 1 or rows[0][0] is None:
        raise ValueError(f"{db_path}: sample_clock must hold exactly one timestamp, found {len(rows)} rows")
    return rows[0][0].date()


def read_sample_state(db_path: Path) -> SampleState:
    """The simulation bookkeeping (seed, start date, rates), read-only."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FileNotFoundError(f"no sample ERP database at {db_path}")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return _read_state(con, db_path)
    finally:
        con.close()


def _simulate_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    state = _employees_day(con, state, day)
    state = _products_day(con, state, day)
    state = _customers_day(con, state, day)
    state = _order_lines_day(con, state, day)
    return replace(state, current_day=day)


def _employees_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """Rare promotions and transfers, new hires, a rare leaver (lines go to a regional colleague).

    The employee table is small (hundreds of rows), so a few row-wise statements are fine here.
    """
    today = np.array([_np_day(day)])
    managers = dict(
        con.sql("SELECT region, employee_id FROM employee WHERE title = ? ORDER BY employee_id", params=[MANAGER_TITLE]).fetchall()
    )

    def reps() -> list[tuple[int, str, str]]:
        placeholders = ", ".join("?" for _ in REP_TITLES)
        return con.sql(
            f"SELECT employee_id, title, region FROM employee WHERE title IN ({placeholders}) ORDER BY employee_id",
            params=list(REP_TITLES),
        ).fetchall()

    def reps_in(region: str) -> list[int]:
        return [e for e, _, r in reps() if r == region]

    rng = _rng(state, day, "employee_change")
    current = reps()
    count = min(int(rng.poisson(state.employee_changes_per_day)), len(current))
    chosen = rng.choice(len(current), size=count, replace=False) if count else []
    for index in sorted(int(i) for i in chosen):
        employee_id, title, region = current[index]
        when = _times_on(rng, today)[0].item()
        rank = REP_TITLES.index(title)
        target = REGIONS[(REGIONS.index(region) + int(rng.integers(1, len(REGIONS)))) % len(REGIONS)]
        transfer = rng.random() < 0.5 or rank == len(REP_TITLES) - 1
        if transfer and len(reps_in(region)) > 1 and target in managers:
            con.execute(
                "UPDATE employee SET region = ?, manager_id = ?, modified_at = ? WHERE employee_id = ?",
                [target, managers[target], when, employee_id],
            )
        elif rank < len(REP_TITLES) - 1:
            con.execute(
                "UPDATE employee SET title = ?, modified_at = ? WHERE employee_id = ?",
                [REP_TITLES[rank + 1], when, employee_id],
            )

    rng = _rng(state, day, "employee_hire")
    hires = int(rng.poisson(state.employees_hired_per_day))
    next_id = state.next_employee_id
    if hires:
        ids = next_id + np.arange(hires, dtype=np.int64)
        regions = rng.integers(0, len(REGIONS), hires)
        rows = _employee_rows(
            rng,
            ids,
            [REP_TITLES[0]] * hires,
            regions,
            [managers.get(REGIONS[r]) for r in regions],
            np.repeat(today, hires),
            _times_on(rng, np.repeat(today, hires)),
        )
        _insert(con, "employee", rows)
        next_id += hires

    rng = _rng(state, day, "employee_leave")
    if rng.poisson(state.employees_leaving_per_day) > 0:
        current = reps()
        movable = [(e, r) for e, _, r in current if len(reps_in(r)) > 1]
        if movable:
            leaver, region = movable[int(rng.integers(0, len(movable)))]
            colleagues = [e for e in reps_in(region) if e != leaver]
            successor = colleagues[int(rng.integers(0, len(colleagues)))]
            when = _times_on(rng, today)[0].item()
            con.execute(
                "UPDATE sales_order_line SET employee_id = ?, modified_at = ? WHERE employee_id = ?",
                [successor, when, leaver],
            )
            con.execute("DELETE FROM employee WHERE employee_id = ?", [leaver])
    return replace(state, next_employee_id=next_id)


def _products_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """A rare delete of a product nobody ordered, price changes, a few new products."""
    rng = _rng(state, day, "product_delete")
    unused = _query(
        con,
        """SELECT p.product_id FROM product p
           WHERE NOT EXISTS (SELECT 1 FROM sales_order_line s WHERE s.product_id = p.product_id)
           ORDER BY p.product_id""",
    )
    gone = _choose(rng, _column(unused, "product_id"), rng.poisson(state.products_deleted_per_day))
    if len(gone):
        con.execute("DELETE FROM product WHERE product_id IN (SELECT unnest(?))", [gone.tolist()])

    rng = _rng(state, day, "product_price")
    prices = _query(con, "SELECT product_id, CAST(list_price * 100 AS BIGINT) AS cents FROM product ORDER BY product_id")
    count = min(int(rng.poisson(state.product_price_changes_per_day)), prices.num_rows)
    if count:
        picked = np.sort(rng.choice(prices.num_rows, size=count, replace=False))
        old = _column(prices, "cents")[picked]
        factor = rng.uniform(0.9, 1.15, count)
        new = np.maximum(1, np.round((old + 1) / 100 * factor)).astype(np.int64) * 100 - 1
        new = np.where(new == old, old + 100, new)
        batch = pa.table(
            {
                "product_id": pa.array(_column(prices, "product_id")[picked], pa.int64()),
                "list_price": _decimal(new, 12),
                "modified_at": pa.array(_times_on(rng, np.repeat(_np_day(day), count)), pa.timestamp("us")),
            }
        )
        with _registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE product SET list_price = b.list_price, modified_at = b.modified_at
                   FROM sample_batch b WHERE product.product_id = b.product_id"""
            )

    rng = _rng(state, day, "product_new")
    count = int(rng.poisson(state.products_new_per_day))
    next_id = state.next_product_id
    if count:
        ids = next_id + np.arange(count, dtype=np.int64)
        _insert(con, "product", _product_rows(rng, ids, _times_on(rng, np.repeat(_np_day(day), count))))
        next_id += count
    return replace(state, next_product_id=next_id)


def _customers_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """Deletes of customers without orders, ~0.5% updated (some again), new customers; some late."""
    today = _np_day(day)

    rng = _rng(state, day, "customer_delete")
    idle = _query(
        con,
        """SELECT c.customer_id FROM customer c
           WHERE NOT EXISTS (SELECT 1 FROM sales_order_line s WHERE s.customer_id = c.customer_id)
           ORDER BY c.customer_id""",
    )
    gone = _choose(rng, _column(idle, "customer_id"), _daily_count(state.customers_deleted_per_day, state, day))
    if len(gone):
        con.execute("DELETE FROM customer WHERE customer_id IN (SELECT unnest(?))", [gone.tolist()])

    rng = _rng(state, day, "customer_update")
    everyone = _query(con, "SELECT customer_id, modified_at FROM customer ORDER BY customer_id")
    ids = _column(everyone, "customer_id")
    last_change = _column(everyone, "modified_at").astype("datetime64[us]")
    total = int(rng.binomial(len(ids), state.customer_update_share)) if len(ids) else 0
    recent = np.flatnonzero(last_change >= (today - np.timedelta64(10, "D")).astype("datetime64[us]"))
    again = _choose(rng, recent, rng.binomial(total, 0.3))
    others = _choose(rng, np.setdiff1d(np.arange(len(ids)), again), total - len(again))
    chosen = np.sort(np.concatenate([again, others])).astype(np.int64)
    if len(chosen):
        _update_customers(con, rng, state, today, ids[chosen])

    rng = _rng(state, day, "customer_new")
    count = _daily_count(state.customers_new_per_day, state, day)
    next_id = state.next_customer_id
    if count:
        back = _late_offsets(rng, count, state.late_share)
        created = np.sort(_times_on(rng, np.repeat(today, count) - back.astype("timedelta64[D]")))
        new_ids = next_id + np.arange(count, dtype=np.int64)
        _insert(con, "customer", _customer_rows(rng, new_ids, created, created))
        next_id += count
    return replace(state, next_customer_id=next_id)


def _update_customers(
    con: duckdb.DuckDBPyConnection, rng: np.random.Generator, state: SampleState, today: np.datetime64, ids: np.ndarray
) -> None:
    """One change per chosen customer: segment, a move (city and country) or a new e-mail domain."""
    current = _query(
        con,
        """SELECT customer_id, email, segment, city, modified_at FROM customer
           WHERE customer_id IN (SELECT unnest(?)) ORDER BY customer_id""",
        [ids.tolist()],
    )
    n = current.num_rows
    kind = rng.choice(3, size=n, p=(0.35, 0.35, 0.3))

    segment = pc.fill_null(pc.index_in(current.column("segment"), value_set=pa.array(SEGMENTS)), 0)
    segment = _np(segment).astype(np.int64)
    buyers = len(SEGMENTS) - 1  # the first three segments buy; prospects convert to one of them
    converted = rng.integers(0, buyers, n)
    shifted = (segment + rng.integers(1, buyers, n)) % buyers
    new_segment = np.where(kind == 0, np.where(segment == SEGMENTS.index(PROSPECT), converted, shifted), segment)

    location = _location_index(current.column("city"))
    moved = (location + rng.integers(1, len(LOCATIONS), n)) % len(LOCATIONS)
    new_location = np.where(kind == 1, moved, location)

    parts = pc.split_pattern(current.column("email"), "@", max_splits=1)
    local = pc.list_element(parts, 0)
    domain = pc.fill_null(pc.index_in(pc.list_element(parts, 1), value_set=pa.array(_EMAIL_DOMAINS)), 0)
    domain = _np(domain).astype(np.int64)
    new_domain = (domain + rng.integers(1, len(_EMAIL_DOMAINS), n)) % len(_EMAIL_DOMAINS)
    new_email = pc.if_else(
        pa.array(kind == 2), pc.binary_join_element_wise(local, "@", _take(_EMAIL_DOMAINS, new_domain), ""), current.column("email")
    )

    # A late change is dated one or two days back, but never before the row's last change.
    on_time = _times_on(rng, np.repeat(today, n))
    back = _late_offsets(rng, n, state.late_share)
    late = _times_on(rng, np.repeat(today, n) - back.astype("timedelta64[D]"))
    previous = _column(current, "modified_at").astype("datetime64[us]")
    modified = np.where((back > 0) & (late > previous), late, on_time)

    batch = pa.table(
        {
            "customer_id": current.column("customer_id"),
            "email": new_email,
            "segment": _take(SEGMENTS, new_segment),
            "city": _take(tuple(c for c, _, _ in LOCATIONS), new_location),
            "country": _take(tuple(c for _, c, _ in LOCATIONS), new_location),
            "modified_at": pa.array(modified, pa.timestamp("us")),
        }
    )
    with _registered(con, "sample_batch", batch):
        con.execute(
            """UPDATE customer SET email = b.email, segment = b.segment, city = b.city, country = b.country,
                      modified_at = b.modified_at
               FROM sample_batch b WHERE customer.customer_id = b.customer_id"""
        )


def _order_lines_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """Shipping, quantity corrections, cancellations, then the day's new orders (some late, some doubled)."""
    today = _np_day(day)

    # Shipping: whole orders whose earliest ship day has come.
    rng = _rng(state, day, "ship")
    due = _query(
        con,
        f"""SELECT DISTINCT order_id FROM sales_order_line
            WHERE ship_date IS NULL AND order_date + CAST({_SHIP_LAG_SQL} AS INTEGER) <= ?
            ORDER BY order_id""",
        [day],
    )
    if due.num_rows:
        batch = pa.table(
            {
                "order_id": due.column("order_id"),
                "modified_at": pa.array(_times_on(rng, np.repeat(today, due.num_rows)), pa.timestamp("us")),
            }
        )
        with _registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE sales_order_line SET ship_date = ?, modified_at = b.modified_at
                   FROM sample_batch b
                   WHERE sales_order_line.order_id = b.order_id AND sales_order_line.ship_date IS NULL""",
                [day],
            )

    # Quantity corrections on recent lines; amount follows, modified_at never goes back.
    rng = _rng(state, day, "correction")
    recent = _query(
        con,
        "SELECT DISTINCT order_line_id, quantity FROM sales_order_line WHERE order_date >= ? ORDER BY order_line_id",
        [day - timedelta(days=14)],
    )
    count = min(int(rng.poisson(state.order_line_corrections_per_day)), recent.num_rows)
    if count:
        picked = np.sort(rng.choice(recent.num_rows, size=count, replace=False))
        old = _column(recent, "quantity")[picked].astype(np.int64)
        new = old + rng.choice(np.array([-2, -1, 1, 2, 3]), size=count)
        new = np.where(new < 1, old + 1, new)
        batch = pa.table(
            {
                "order_line_id": pa.array(_column(recent, "order_line_id")[picked], pa.int64()),
                "quantity": pa.array(new, pa.int32()),
                "modified_at": pa.array(_times_on(rng, np.repeat(today, count)), pa.timestamp("us")),
            }
        )
        with _registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE sales_order_line
                   SET quantity = b.quantity,
                       amount = CAST(b.quantity * sales_order_line.unit_price AS DECIMAL(14,2)),
                       modified_at = greatest(sales_order_line.modified_at, b.modified_at)
                   FROM sample_batch b WHERE sales_order_line.order_line_id = b.order_line_id"""
            )

    # Cancellations: unshipped lines vanish (both copies of a double-posted line).
    rng = _rng(state, day, "cancel")
    open_lines = _query(
        con, "SELECT DISTINCT order_line_id FROM sales_order_line WHERE ship_date IS NULL ORDER BY order_line_id"
    )
    gone = _choose(rng, _column(open_lines, "order_line_id"), _daily_count(state.order_lines_cancelled_per_day, state, day))
    if len(gone):
        con.execute("DELETE FROM sales_order_line WHERE order_line_id IN (SELECT unnest(?))", [gone.tolist()])

    # New orders, by customers and products that existed before today.
    rng = _rng(state, day, "order_new")
    n_lines = _daily_count(state.order_lines_per_day, state, day)
    if n_lines == 0:
        return state
    buyers = _query(
        con,
        "SELECT customer_id, city FROM customer WHERE segment IS DISTINCT FROM ? AND customer_id < ? ORDER BY customer_id",
        [PROSPECT, state.next_customer_id],
    )
    if buyers.num_rows == 0:
        buyers = _query(con, "SELECT customer_id, city FROM customer ORDER BY customer_id")
    products = _query(
        con,
        "SELECT product_id, CAST(list_price * 100 AS BIGINT) AS cents FROM product WHERE product_id < ? ORDER BY product_id",
        [state.next_product_id],
    )
    placeholders = ", ".join("?" for _ in REP_TITLES)
    reps = _query(
        con, f"SELECT employee_id, region FROM employee WHERE title IN ({placeholders}) ORDER BY employee_id", list(REP_TITLES)
    )
    if buyers.num_rows == 0 or products.num_rows == 0 or reps.num_rows == 0:
        return state
    rep_regions = pc.index_in(reps.column("region"), value_set=pa.array(REGIONS))
    pools = _OrderPools(
        customer_ids=_column(buyers, "customer_id"),
        customer_regions=_LOC_REGION[_location_index(buyers.column("city"))],
        product_ids=_column(products, "product_id"),
        product_cents=_column(products, "cents").astype(np.int64),
        rep_ids=_column(reps, "employee_id"),
        rep_regions=_np(pc.fill_null(rep_regions, 0)).astype(np.int64),
    )
    line_counts = _split_into_orders(rng, n_lines)
    n_orders = len(line_counts)
    back = _late_offsets(rng, n_orders, state.late_share)
    order_dates = np.repeat(today, n_orders) - back.astype("timedelta64[D]")
    lines = _order_lines(
        rng,
        pools,
        first_order_id=state.next_order_id,
        first_line_id=state.next_order_line_id,
        order_dates=order_dates,
        order_customer_index=rng.integers(0, len(pools.customer_ids), n_orders),
        line_counts=line_counts,
    )
    line_order = lines["line_order"]
    modified = _times_on(rng, order_dates)[line_order]
    rows = _order_line_rows(lines, np.repeat(today, n_lines), np.zeros(n_lines, dtype=bool), modified)
    dup_rng = _rng(state, day, "duplicate")
    rows = _with_duplicates(dup_rng, rows, dup_rng.poisson(state.duplicate_lines_per_day))
    _insert(con, "sales_order_line", rows)
    return replace(state, next_order_id=state.next_order_id + n_orders, next_order_line_id=state.next_order_line_id + n_lines)
