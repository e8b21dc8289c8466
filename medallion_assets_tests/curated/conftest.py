"""Base Delta tables for the Dagster-level curated tests, written into tmp_path."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

T0 = datetime(2026, 1, 1, 8)


def _write(data_dir: Path, table: str, data: dict) -> None:
    write_deltalake(str(data_dir / "base" / table), pa.table(data), mode="overwrite", schema_mode="overwrite")


@pytest.fixture
def curated_base(tmp_path: Path) -> Path:
    ts = pa.timestamp("us")
    _write(tmp_path, "erp_customer", {
        "customer_id": [1, 2], "customer_name": ["Ann", "Bob"], "email": ["a@x", "b@x"],
        "segment": ["retail", "corporate"], "city": ["Delft", "Ede"], "country": ["NL", "NL"],
        "created_at": pa.array([T0, T0], ts), "modified_at": pa.array([T0, T0], ts),
        "lh_valid_from": pa.array([T0, T0], ts), "lh_valid_to": pa.array([datetime(9999, 12, 31)] * 2, ts),
        "lh_is_current": [True, True], "lh_is_deleted": [False, False],
    })
    _write(tmp_path, "erp_product", {
        "product_id": [10], "product_name": ["Bike"], "category": ["Bikes"], "subcategory": ["Road"],
        "list_price": pa.array([Decimal("999.00")], pa.decimal128(12, 2)), "modified_at": pa.array([T0], ts),
        "lh_is_deleted": [False],
    })
    _write(tmp_path, "erp_employee", {
        "employee_id": [1], "first_name": ["Eve"], "last_name": ["Stone"], "title": ["Rep"], "region": ["North"],
        "manager_id": pa.array([None], pa.int64()), "hire_date": pa.array([date(2020, 1, 1)], pa.date32()),
        "modified_at": pa.array([T0], ts), "lh_is_deleted": [False],
    })
    _write(tmp_path, "erp_sales_order_line", {
        "order_line_id": [1, 2, 3], "order_id": [100, 100, 101], "line_number": [1, 2, 1],
        "order_date": pa.array([date(2026, 1, 2), date(2026, 1, 2), date(2026, 1, 3)], pa.date32()),
        "ship_date": pa.array([date(2026, 1, 4), None, None], pa.date32()),
        "customer_id": [1, 1, 9], "product_id": [10, 10, 10], "employee_id": [1, 1, 1], "quantity": [1, 2, 1],
        "unit_price": pa.array([Decimal("10.00")] * 3, pa.decimal128(12, 2)),
        "amount": pa.array([Decimal("10.00"), Decimal("20.00"), Decimal("10.00")], pa.decimal128(14, 2)),
        "modified_at": pa.array([T0] * 3, ts), "lh_is_deleted": [False, False, False],
    })
    _write(tmp_path, "finance_budget", {
        "budget_month": pa.array([date(2026, 1, 1)], pa.date32()), "category": ["Bikes"], "region": ["North"],
        "budget_amount": pa.array([Decimal("100.00")], pa.decimal128(14, 2)),
    })
    return tmp_path
