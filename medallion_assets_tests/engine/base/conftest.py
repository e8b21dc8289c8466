"""Helpers for the Base engine tests: landing files written the way extracts write them."""

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.storage.files import write_table_file
from medallion_assets.engine.storage.paths import landing_file_path

CUSTOMER_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("segment", pa.string()),
        ("city", pa.string()),
        ("modified_at", pa.timestamp("us")),
    ]
)


def customers(*rows: tuple) -> pa.Table:
    """(customer_id, segment, city, modified_at) tuples -> an extract table."""
    return pa.Table.from_pylist([dict(zip(CUSTOMER_SCHEMA.names, r, strict=True)) for r in rows], schema=CUSTOMER_SCHEMA)


def keys(*ids: int) -> pa.Table:
    return pa.table({"customer_id": pa.array(ids, pa.int64())})


def make_table(**overrides) -> BaseTable:
    spec = {
        "object": "customer",
        "source": "erp",
        "name": "erp_customer",
        "landing": [{"source": "erp", "object": "customer"}],
        "format": "csv",
        "read_options": {"delimiter": ",", "header": True},
        "write_behaviour": "scd2",
        "business_keys": ["customer_id"],
        "modify_date_column": "modified_at",
    }
    spec.update(overrides)
    return BaseTable.model_validate(spec)


@pytest.fixture
def land(tmp_path: Path) -> Callable[..., Path]:
    """land(day, load_type, table, hour=22, fmt='csv', obj='customer') writes one landing file."""

    def _land(day: date, load_type: str, table: pa.Table, hour: int = 22, fmt: str = "csv", obj: str = "customer", minute: int = 0) -> Path:
        path = landing_file_path(
            tmp_path, "erp", obj, load_type, day, extracted_at=datetime(day.year, day.month, day.day, hour, minute), fmt=fmt
        )
        write_table_file(table, path, fmt)
        return path

    return _land


def read_base(root: Path, name: str = "erp_customer", system: bool = False) -> list[dict]:
    table = DeltaTable(str(root / "base" / name)).to_pyarrow_table()
    if not system:
        table = table.drop_columns([c for c in ("lh_created_date", "lh_modified_date") if c in table.column_names])
    sort = [c for c in ("customer_id", "lh_valid_from") if c in table.column_names]
    return table.sort_by([(c, "ascending") for c in sort]).to_pylist()


class Helpers:
    """Plain helpers handed to tests as a fixture (test folders are not packages)."""

    customers = staticmethod(customers)
    keys = staticmethod(keys)
    make_table = staticmethod(make_table)
    read_base = staticmethod(read_base)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
