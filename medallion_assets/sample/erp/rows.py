"""Row builders: Arrow tables of new customers, products, employees and order lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medallion_assets.sample.erp.arrays import decimal_array, take_strings
from medallion_assets.sample.erp.reference import (
    CATEGORIES,
    CATEGORY_PRICE_RANGE,
    CATEGORY_WEIGHTS,
    DISCOUNT_P,
    DISCOUNTS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    LOCATIONS,
    MAX_QUANTITY,
    MODEL_WORDS,
    QUANTITY_P,
    REGIONS,
    SEGMENTS,
    SUBCATEGORIES,
)


def customer_rows(
    rng: np.random.Generator, ids: np.ndarray, created_at: np.ndarray, modified_at: np.ndarray
) -> pa.Table:
    n = len(ids)
    first = take_strings(FIRST_NAMES, rng.integers(0, len(FIRST_NAMES), n))
    last = take_strings(LAST_NAMES, rng.integers(0, len(LAST_NAMES), n))
    segment = rng.choice(len(SEGMENTS), size=n, p=(0.55, 0.2, 0.15, 0.1))
    location = rng.integers(0, len(LOCATIONS), n)
    domain = take_strings(EMAIL_DOMAINS, rng.integers(0, len(EMAIL_DOMAINS), n))
    id_text = pc.cast(pa.array(ids, pa.int64()), pa.string())
    local = pc.utf8_lower(pc.binary_join_element_wise(first, ".", last, id_text, ""))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "customer_name": pc.binary_join_element_wise(first, last, " "),
            "email": pc.binary_join_element_wise(local, "@", domain, ""),
            "segment": take_strings(SEGMENTS, segment),
            "city": take_strings(tuple(c for c, _, _ in LOCATIONS), location),
            "country": take_strings(tuple(c for _, c, _ in LOCATIONS), location),
            "created_at": pa.array(created_at, pa.timestamp("us")),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def product_rows(rng: np.random.Generator, ids: np.ndarray, modified_at: np.ndarray) -> pa.Table:
    n = len(ids)
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS)
    sub_counts = np.array([len(SUBCATEGORIES[c]) for c in CATEGORIES])
    sub_offsets = np.concatenate([[0], np.cumsum(sub_counts)[:-1]])
    flat_subs = tuple(s for c in CATEGORIES for s in SUBCATEGORIES[c])
    sub = sub_offsets[category] + (rng.random(n) * sub_counts[category]).astype(np.int64)
    low = np.array([CATEGORY_PRICE_RANGE[c][0] for c in CATEGORIES])[category]
    high = np.array([CATEGORY_PRICE_RANGE[c][1] for c in CATEGORIES])[category]
    dollars = np.maximum(1, np.round(np.exp(rng.uniform(np.log(low), np.log(high))))).astype(np.int64)
    model = take_strings(MODEL_WORDS, rng.integers(0, len(MODEL_WORDS), n))
    number = pc.cast(pa.array(rng.integers(100, 1000, n), pa.int64()), pa.string())
    subcategory = take_strings(flat_subs, sub)
    return pa.table(
        {
            "product_id": pa.array(ids, pa.int64()),
            "product_name": pc.binary_join_element_wise(subcategory, model, number, " "),
            "category": take_strings(CATEGORIES, category),
            "subcategory": subcategory,
            "list_price": decimal_array(dollars * 100 - 1, 12),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def employee_rows(
    rng: np.random.Generator,
    ids: np.ndarray,
    titles: list[str],
    *,
    regions: np.ndarray,
    managers: list[int | None],
    hire_dates: np.ndarray,
    modified_at: np.ndarray,
) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "employee_id": pa.array(ids, pa.int64()),
            "first_name": take_strings(FIRST_NAMES, rng.integers(0, len(FIRST_NAMES), n)),
            "last_name": take_strings(LAST_NAMES, rng.integers(0, len(LAST_NAMES), n)),
            "title": pa.array(titles, pa.string()),
            "region": take_strings(REGIONS, regions),
            "manager_id": pa.array(managers, pa.int64()),
            "hire_date": pa.array(hire_dates.astype("datetime64[D]"), pa.date32()),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


@dataclass
class OrderPools:
    """What new orders may reference: non-prospect customers, products and sales reps."""

    customer_ids: np.ndarray
    customer_regions: np.ndarray
    product_ids: np.ndarray
    product_cents: np.ndarray
    rep_ids: np.ndarray
    rep_regions: np.ndarray


def draw_order_lines(
    rng: np.random.Generator,
    pools: OrderPools,
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


def split_into_orders(rng: np.random.Generator, n_lines: int) -> np.ndarray:
    """Line counts (1-5) of orders that hold exactly ``n_lines`` lines (the last one is cut)."""
    if n_lines <= 0:
        return np.zeros(0, dtype=np.int64)
    counts = rng.integers(1, 6, n_lines)  # never fewer lines than asked: each order has >= 1
    n_orders = int(np.searchsorted(np.cumsum(counts), n_lines)) + 1
    counts = counts[:n_orders].copy()
    counts[-1] -= int(counts.sum()) - n_lines
    return counts


def order_line_rows(lines: dict[str, np.ndarray], ship_date: np.ndarray, shipped: np.ndarray, modified_at: np.ndarray) -> pa.Table:
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
            "unit_price": decimal_array(lines["unit_cents"], 12),
            "amount": decimal_array(lines["unit_cents"] * lines["quantity"].astype(np.int64), 14),
            "modified_at": pa.array(modified_at, pa.timestamp("us")),
        }
    )


def with_duplicates(rng: np.random.Generator, rows: pa.Table, count: int) -> pa.Table:
    """Append exact copies of ``count`` rows: the ERP's double-post glitch."""
    count = min(int(count), rows.num_rows)
    if count == 0:
        return rows
    picked = np.sort(rng.choice(rows.num_rows, size=count, replace=False))
    return pa.concat_tables([rows, rows.take(pa.array(picked))])
