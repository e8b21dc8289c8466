"""Small hand-made base Delta tables shaped like the sample ERP, written into tmp_path."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from deltalake import write_deltalake

HIGH = datetime(9999, 12, 31)
TS = pa.timestamp("us")


def write_base(data_dir: Path, table: str, rows: list[dict], schema: pa.Schema) -> Path:
    path = data_dir / "base" / table
    write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema), mode="overwrite", schema_mode="overwrite")
    return path


CUSTOMER_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("customer_name", pa.string()),
        ("email", pa.string()),
        ("segment", pa.string()),
        ("city", pa.string()),
        ("country", pa.string()),
        ("created_at", TS),
        ("modified_at", TS),
        ("lh_valid_from", TS),
        ("lh_valid_to", TS),
        ("lh_is_current", pa.bool_()),
        ("lh_is_deleted", pa.bool_()),
    ]
)
PRODUCT_SCHEMA = pa.schema(
    [
        ("product_id", pa.int64()),
        ("product_name", pa.string()),
        ("category", pa.string()),
        ("subcategory", pa.string()),
        ("list_price", pa.decimal128(12, 2)),
        ("modified_at", TS),
        ("lh_is_deleted", pa.bool_()),
    ]
)
EMPLOYEE_SCHEMA = pa.schema(
    [
        ("employee_id", pa.int64()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("title", pa.string()),
        ("region", pa.string()),
        ("manager_id", pa.int64()),
        ("hire_date", pa.date32()),
        ("modified_at", TS),
        ("lh_is_deleted", pa.bool_()),
    ]
)
ORDER_LINE_SCHEMA = pa.schema(
    [
        ("order_line_id", pa.int64()),
        ("order_id", pa.int64()),
        ("line_number", pa.int32()),
        ("order_date", pa.date32()),
        ("ship_date", pa.date32()),
        ("customer_id", pa.int64()),
        ("product_id", pa.int64()),
        ("employee_id", pa.int64()),
        ("quantity", pa.int32()),
        ("unit_price", pa.decimal128(12, 2)),
        ("amount", pa.decimal128(14, 2)),
        ("modified_at", TS),
        ("lh_is_deleted", pa.bool_()),
    ]
)
BUDGET_SCHEMA = pa.schema(
    [
        ("budget_month", pa.date32()),
        ("category", pa.string()),
        ("region", pa.string()),
        ("budget_amount", pa.decimal128(14, 2)),
    ]
)


def customer(cid: int, name: str, segment: str, modified: datetime, *, valid_to: datetime = HIGH,
             current: bool = True, deleted: bool = False) -> dict:
    return {
        "customer_id": cid, "customer_name": name, "email": f"c{cid}@example.com", "segment": segment,
        "city": "Utrecht", "country": "NL", "created_at": datetime(2025, 1, 1), "modified_at": modified,
        "lh_valid_from": modified, "lh_valid_to": valid_to, "lh_is_current": current, "lh_is_deleted": deleted,
    }


def order_line(line_id: int, order_date: date, customer_id: int, product_id: int, amount: str, *,
               ship_date: date | None = None, employee_id: int = 1, deleted: bool = False) -> dict:
    return {
        "order_line_id": line_id, "order_id": 1000 + line_id // 10, "line_number": line_id % 10,
        "order_date": order_date, "ship_date": ship_date, "customer_id": customer_id, "product_id": product_id,
        "employee_id": employee_id, "quantity": 1, "unit_price": Decimal(amount), "amount": Decimal(amount),
        "modified_at": datetime(2026, 1, 1), "lh_is_deleted": deleted,
    }


@pytest.fixture
def sample_base(tmp_path: Path) -> Path:
    """A tiny sample ERP in base: 3 customers, 2 products, 2 employees, 5 order lines (1 deleted)."""
    t0 = datetime(2026, 1, 1, 8)
    write_base(tmp_path, "erp_customer", [
        customer(1, "Ann", "retail", t0),
        customer(2, "Bob", "retail", t0),
        customer(3, "Cy", "corporate", t0),
    ], CUSTOMER_SCHEMA)
    write_base(tmp_path, "erp_product", [
        {"product_id": 10, "product_name": "Bike", "category": "Bikes", "subcategory": "Road",
         "list_price": Decimal("999.00"), "modified_at": t0, "lh_is_deleted": False},
        {"product_id": 11, "product_name": "Helmet", "category": "Gear", "subcategory": "Safety",
         "list_price": Decimal("49.50"), "modified_at": t0, "lh_is_deleted": False},
    ], PRODUCT_SCHEMA)
    write_base(tmp_path, "erp_employee", [
        {"employee_id": 1, "first_name": "Eve", "last_name": "Stone", "title": "Rep", "region": "North",
         "manager_id": None, "hire_date": date(2020, 1, 1), "modified_at": t0, "lh_is_deleted": False},
        {"employee_id": 2, "first_name": "Dan", "last_name": "Wood", "title": "Rep", "region": "South",
         "manager_id": 1, "hire_date": date(2021, 1, 1), "modified_at": t0, "lh_is_deleted": False},
    ], EMPLOYEE_SCHEMA)
    write_base(tmp_path, "erp_sales_order_line", [
        order_line(1, date(2026, 1, 2), 1, 10, "999.00", ship_date=date(2026, 1, 5)),
        order_line(2, date(2026, 1, 2), 1, 11, "49.50", ship_date=date(2026, 1, 5)),
        order_line(3, date(2026, 1, 3), 2, 10, "950.00", employee_id=2),
        order_line(4, date(2026, 1, 4), 3, 11, "45.00"),
        order_line(5, date(2026, 1, 4), 3, 10, "1.00", deleted=True),
    ], ORDER_LINE_SCHEMA)
    write_base(tmp_path, "finance_budget", [
        {"budget_month": date(2026, 1, 1), "category": "Bikes", "region": "North", "budget_amount": Decimal("5000.00")},
        {"budget_month": date(2026, 2, 1), "category": "Bikes", "region": "North", "budget_amount": Decimal("6000.00")},
    ], BUDGET_SCHEMA)
    return tmp_path


@pytest.fixture
def base_kit() -> SimpleNamespace:
    """The helpers above, for tests that build their own base tables (conftest is not importable)."""
    return SimpleNamespace(
        write_base=write_base, customer=customer, order_line=order_line, CUSTOMER_SCHEMA=CUSTOMER_SCHEMA,
        ORDER_LINE_SCHEMA=ORDER_LINE_SCHEMA, PRODUCT_SCHEMA=PRODUCT_SCHEMA,
    )
