"""Advance the database one simulated day at a time: every day one DuckDB transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.sample.erp.arrays import (
    LOC_REGION,
    as_numpy,
    choose_from,
    column_values,
    decimal_array,
    insert_rows,
    late_offsets,
    location_index,
    np_day,
    query_arrow,
    registered,
    take_strings,
    times_on,
)
from medallion_assets.sample.erp.reference import (
    EMAIL_DOMAINS,
    LOCATIONS,
    MANAGER_TITLE,
    PROSPECT,
    REGIONS,
    REP_TITLES,
    SEGMENTS,
    SHIP_LAG_SQL,
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
from medallion_assets.sample.erp.state import SampleState, daily_count, day_rng, read_state, write_state


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
        state = read_state(con, db_path)
        for _ in range(days):
            con.execute("BEGIN TRANSACTION")
            try:
                state = _simulate_day(con, state, state.current_day + timedelta(days=1))
                write_state(con, state)
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
        return read_state(con, db_path)
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
    today = np.array([np_day(day)])
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

    rng = day_rng(state, day, "employee_change")
    current = reps()
    count = min(int(rng.poisson(state.employee_changes_per_day)), len(current))
    chosen = rng.choice(len(current), size=count, replace=False) if count else []
    for index in sorted(int(i) for i in chosen):
        employee_id, title, region = current[index]
        when = times_on(rng, today)[0].item()
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

    rng = day_rng(state, day, "employee_hire")
    hires = int(rng.poisson(state.employees_hired_per_day))
    next_id = state.next_employee_id
    if hires:
        ids = next_id + np.arange(hires, dtype=np.int64)
        regions = rng.integers(0, len(REGIONS), hires)
        rows = employee_rows(
            rng,
            ids,
            [REP_TITLES[0]] * hires,
            regions=regions,
            managers=[managers.get(REGIONS[r]) for r in regions],
            hire_dates=np.repeat(today, hires),
            modified_at=times_on(rng, np.repeat(today, hires)),
        )
        insert_rows(con, "employee", rows)
        next_id += hires

    rng = day_rng(state, day, "employee_leave")
    if rng.poisson(state.employees_leaving_per_day) > 0:
        current = reps()
        movable = [(e, r) for e, _, r in current if len(reps_in(r)) > 1]
        if movable:
            leaver, region = movable[int(rng.integers(0, len(movable)))]
            colleagues = [e for e in reps_in(region) if e != leaver]
            successor = colleagues[int(rng.integers(0, len(colleagues)))]
            when = times_on(rng, today)[0].item()
            con.execute(
                "UPDATE sales_order_line SET employee_id = ?, modified_at = ? WHERE employee_id = ?",
                [successor, when, leaver],
            )
            con.execute("DELETE FROM employee WHERE employee_id = ?", [leaver])
    return replace(state, next_employee_id=next_id)


def _products_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """A rare delete of a product nobody ordered, price changes, a few new products."""
    rng = day_rng(state, day, "product_delete")
    unused = query_arrow(
        con,
        """SELECT p.product_id FROM product p
           WHERE NOT EXISTS (SELECT 1 FROM sales_order_line s WHERE s.product_id = p.product_id)
           ORDER BY p.product_id""",
    )
    gone = choose_from(rng, column_values(unused, "product_id"), rng.poisson(state.products_deleted_per_day))
    if len(gone):
        con.execute("DELETE FROM product WHERE product_id IN (SELECT unnest(?))", [gone.tolist()])

    rng = day_rng(state, day, "product_price")
    prices = query_arrow(con, "SELECT product_id, CAST(list_price * 100 AS BIGINT) AS cents FROM product ORDER BY product_id")
    count = min(int(rng.poisson(state.product_price_changes_per_day)), prices.num_rows)
    if count:
        picked = np.sort(rng.choice(prices.num_rows, size=count, replace=False))
        old = column_values(prices, "cents")[picked]
        factor = rng.uniform(0.9, 1.15, count)
        new = np.maximum(1, np.round((old + 1) / 100 * factor)).astype(np.int64) * 100 - 1
        new = np.where(new == old, old + 100, new)
        batch = pa.table(
            {
                "product_id": pa.array(column_values(prices, "product_id")[picked], pa.int64()),
                "list_price": decimal_array(new, 12),
                "modified_at": pa.array(times_on(rng, np.repeat(np_day(day), count)), pa.timestamp("us")),
            }
        )
        with registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE product SET list_price = b.list_price, modified_at = b.modified_at
                   FROM sample_batch b WHERE product.product_id = b.product_id"""
            )

    rng = day_rng(state, day, "product_new")
    count = int(rng.poisson(state.products_new_per_day))
    next_id = state.next_product_id
    if count:
        ids = next_id + np.arange(count, dtype=np.int64)
        insert_rows(con, "product", product_rows(rng, ids, times_on(rng, np.repeat(np_day(day), count))))
        next_id += count
    return replace(state, next_product_id=next_id)


def _customers_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """Deletes of customers without orders, ~0.5% updated (some again), new customers; some late."""
    today = np_day(day)

    rng = day_rng(state, day, "customer_delete")
    idle = query_arrow(
        con,
        """SELECT c.customer_id FROM customer c
           WHERE NOT EXISTS (SELECT 1 FROM sales_order_line s WHERE s.customer_id = c.customer_id)
           ORDER BY c.customer_id""",
    )
    gone = choose_from(rng, column_values(idle, "customer_id"), daily_count(state.customers_deleted_per_day, state, day))
    if len(gone):
        con.execute("DELETE FROM customer WHERE customer_id IN (SELECT unnest(?))", [gone.tolist()])

    rng = day_rng(state, day, "customer_update")
    everyone = query_arrow(con, "SELECT customer_id, modified_at FROM customer ORDER BY customer_id")
    ids = column_values(everyone, "customer_id")
    last_change = column_values(everyone, "modified_at").astype("datetime64[us]")
    total = int(rng.binomial(len(ids), state.customer_update_share)) if len(ids) else 0
    recent = np.flatnonzero(last_change >= (today - np.timedelta64(10, "D")).astype("datetime64[us]"))
    again = choose_from(rng, recent, rng.binomial(total, 0.3))
    others = choose_from(rng, np.setdiff1d(np.arange(len(ids)), again), total - len(again))
    chosen = np.sort(np.concatenate([again, others])).astype(np.int64)
    if len(chosen):
        _update_customers(con, rng, state, today, ids[chosen])

    rng = day_rng(state, day, "customer_new")
    count = daily_count(state.customers_new_per_day, state, day)
    next_id = state.next_customer_id
    if count:
        back = late_offsets(rng, count, state.late_share)
        created = np.sort(times_on(rng, np.repeat(today, count) - back.astype("timedelta64[D]")))
        new_ids = next_id + np.arange(count, dtype=np.int64)
        insert_rows(con, "customer", customer_rows(rng, new_ids, created, created))
        next_id += count
    return replace(state, next_customer_id=next_id)


def _update_customers(
    con: duckdb.DuckDBPyConnection, rng: np.random.Generator, state: SampleState, today: np.datetime64, ids: np.ndarray
) -> None:
    """One change per chosen customer: segment, a move (city and country) or a new e-mail domain."""
    current = query_arrow(
        con,
        """SELECT customer_id, email, segment, city, modified_at FROM customer
           WHERE customer_id IN (SELECT unnest(?)) ORDER BY customer_id""",
        [ids.tolist()],
    )
    n = current.num_rows
    kind = rng.choice(3, size=n, p=(0.35, 0.35, 0.3))

    segment = pc.fill_null(pc.index_in(current.column("segment"), value_set=pa.array(SEGMENTS)), 0)
    segment = as_numpy(segment).astype(np.int64)
    buyers = len(SEGMENTS) - 1  # the first three segments buy; prospects convert to one of them
    converted = rng.integers(0, buyers, n)
    shifted = (segment + rng.integers(1, buyers, n)) % buyers
    new_segment = np.where(kind == 0, np.where(segment == SEGMENTS.index(PROSPECT), converted, shifted), segment)

    location = location_index(current.column("city"))
    moved = (location + rng.integers(1, len(LOCATIONS), n)) % len(LOCATIONS)
    new_location = np.where(kind == 1, moved, location)

    parts = pc.split_pattern(current.column("email"), "@", max_splits=1)
    local = pc.list_element(parts, 0)
    domain = pc.fill_null(pc.index_in(pc.list_element(parts, 1), value_set=pa.array(EMAIL_DOMAINS)), 0)
    domain = as_numpy(domain).astype(np.int64)
    new_domain = (domain + rng.integers(1, len(EMAIL_DOMAINS), n)) % len(EMAIL_DOMAINS)
    new_email = pc.if_else(
        pa.array(kind == 2), pc.binary_join_element_wise(local, "@", take_strings(EMAIL_DOMAINS, new_domain), ""), current.column("email")
    )

    # A late change is dated one or two days back, but never before the row's last change.
    on_time = times_on(rng, np.repeat(today, n))
    back = late_offsets(rng, n, state.late_share)
    late = times_on(rng, np.repeat(today, n) - back.astype("timedelta64[D]"))
    previous = column_values(current, "modified_at").astype("datetime64[us]")
    modified = np.where((back > 0) & (late > previous), late, on_time)

    batch = pa.table(
        {
            "customer_id": current.column("customer_id"),
            "email": new_email,
            "segment": take_strings(SEGMENTS, new_segment),
            "city": take_strings(tuple(c for c, _, _ in LOCATIONS), new_location),
            "country": take_strings(tuple(c for _, c, _ in LOCATIONS), new_location),
            "modified_at": pa.array(modified, pa.timestamp("us")),
        }
    )
    with registered(con, "sample_batch", batch):
        con.execute(
            """UPDATE customer SET email = b.email, segment = b.segment, city = b.city, country = b.country,
                      modified_at = b.modified_at
               FROM sample_batch b WHERE customer.customer_id = b.customer_id"""
        )


def _order_lines_day(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """Shipping, quantity corrections, cancellations, then the day's new orders (some late, some doubled)."""
    _ship_due_orders(con, state, day)
    _correct_quantities(con, state, day)
    _cancel_open_lines(con, state, day)
    return _place_new_orders(con, state, day)


def _ship_due_orders(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> None:
    """Whole orders whose earliest ship day has come ship today."""
    today = np_day(day)
    rng = day_rng(state, day, "ship")
    due = query_arrow(
        con,
        f"""SELECT DISTINCT order_id FROM sales_order_line
            WHERE ship_date IS NULL AND order_date + CAST({SHIP_LAG_SQL} AS INTEGER) <= ?
            ORDER BY order_id""",
        [day],
    )
    if due.num_rows:
        batch = pa.table(
            {
                "order_id": due.column("order_id"),
                "modified_at": pa.array(times_on(rng, np.repeat(today, due.num_rows)), pa.timestamp("us")),
            }
        )
        with registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE sales_order_line SET ship_date = ?, modified_at = b.modified_at
                   FROM sample_batch b
                   WHERE sales_order_line.order_id = b.order_id AND sales_order_line.ship_date IS NULL""",
                [day],
            )


def _correct_quantities(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> None:
    """Quantity corrections on recent lines; amount follows, modified_at never goes back."""
    today = np_day(day)
    rng = day_rng(state, day, "correction")
    recent = query_arrow(
        con,
        "SELECT DISTINCT order_line_id, quantity FROM sales_order_line WHERE order_date >= ? ORDER BY order_line_id",
        [day - timedelta(days=14)],
    )
    count = min(int(rng.poisson(state.order_line_corrections_per_day)), recent.num_rows)
    if count:
        picked = np.sort(rng.choice(recent.num_rows, size=count, replace=False))
        old = column_values(recent, "quantity")[picked].astype(np.int64)
        new = old + rng.choice(np.array([-2, -1, 1, 2, 3]), size=count)
        new = np.where(new < 1, old + 1, new)
        batch = pa.table(
            {
                "order_line_id": pa.array(column_values(recent, "order_line_id")[picked], pa.int64()),
                "quantity": pa.array(new, pa.int32()),
                "modified_at": pa.array(times_on(rng, np.repeat(today, count)), pa.timestamp("us")),
            }
        )
        with registered(con, "sample_batch", batch):
            con.execute(
                """UPDATE sales_order_line
                   SET quantity = b.quantity,
                       amount = CAST(b.quantity * sales_order_line.unit_price AS DECIMAL(14,2)),
                       modified_at = greatest(sales_order_line.modified_at, b.modified_at)
                   FROM sample_batch b WHERE sales_order_line.order_line_id = b.order_line_id"""
            )


def _cancel_open_lines(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> None:
    """Unshipped lines vanish (both copies of a double-posted line)."""
    rng = day_rng(state, day, "cancel")
    open_lines = query_arrow(
        con, "SELECT DISTINCT order_line_id FROM sales_order_line WHERE ship_date IS NULL ORDER BY order_line_id"
    )
    gone = choose_from(rng, column_values(open_lines, "order_line_id"), daily_count(state.order_lines_cancelled_per_day, state, day))
    if len(gone):
        con.execute("DELETE FROM sales_order_line WHERE order_line_id IN (SELECT unnest(?))", [gone.tolist()])


def _place_new_orders(con: duckdb.DuckDBPyConnection, state: SampleState, day: date) -> SampleState:
    """The day's new orders, by customers and products that existed before today."""
    rng = day_rng(state, day, "order_new")
    n_lines = daily_count(state.order_lines_per_day, state, day)
    if n_lines == 0:
        return state
    pools = _order_pools(con, state)
    if pools is None:
        return state
    today = np_day(day)
    line_counts = split_into_orders(rng, n_lines)
    n_orders = len(line_counts)
    back = late_offsets(rng, n_orders, state.late_share)
    order_dates = np.repeat(today, n_orders) - back.astype("timedelta64[D]")
    lines = draw_order_lines(
        rng,
        pools,
        first_order_id=state.next_order_id,
        first_line_id=state.next_order_line_id,
        order_dates=order_dates,
        order_customer_index=rng.integers(0, len(pools.customer_ids), n_orders),
        line_counts=line_counts,
    )
    line_order = lines["line_order"]
    modified = times_on(rng, order_dates)[line_order]
    rows = order_line_rows(lines, np.repeat(today, n_lines), np.zeros(n_lines, dtype=bool), modified)
    dup_rng = day_rng(state, day, "duplicate")
    rows = with_duplicates(dup_rng, rows, dup_rng.poisson(state.duplicate_lines_per_day))
    insert_rows(con, "sales_order_line", rows)
    return replace(state, next_order_id=state.next_order_id + n_orders, next_order_line_id=state.next_order_line_id + n_lines)


def _order_pools(con: duckdb.DuckDBPyConnection, state: SampleState) -> OrderPools | None:
    """Who may buy, what may be bought and who may sell today; ``None`` when any pool is empty."""
    buyers = query_arrow(
        con,
        "SELECT customer_id, city FROM customer WHERE segment IS DISTINCT FROM ? AND customer_id < ? ORDER BY customer_id",
        [PROSPECT, state.next_customer_id],
    )
    if buyers.num_rows == 0:
        buyers = query_arrow(con, "SELECT customer_id, city FROM customer ORDER BY customer_id")
    products = query_arrow(
        con,
        "SELECT product_id, CAST(list_price * 100 AS BIGINT) AS cents FROM product WHERE product_id < ? ORDER BY product_id",
        [state.next_product_id],
    )
    placeholders = ", ".join("?" for _ in REP_TITLES)
    reps = query_arrow(
        con, f"SELECT employee_id, region FROM employee WHERE title IN ({placeholders}) ORDER BY employee_id", list(REP_TITLES)
    )
    if buyers.num_rows == 0 or products.num_rows == 0 or reps.num_rows == 0:
        return None
    rep_regions = pc.index_in(reps.column("region"), value_set=pa.array(REGIONS))
    return OrderPools(
        customer_ids=column_values(buyers, "customer_id"),
        customer_regions=LOC_REGION[location_index(buyers.column("city"))],
        product_ids=column_values(products, "product_id"),
        product_cents=column_values(products, "cents").astype(np.int64),
        rep_ids=column_values(reps, "employee_id"),
        rep_regions=as_numpy(pc.fill_null(rep_regions, 0)).astype(np.int64),
    )
