"""Exact types from real databases: each common type lands and reaches a base Delta table with
its exact value (PostgreSQL through ADBC, MariaDB and SQLite through SQLAlchemy)."""

from datetime import date, datetime
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base import load_partition, table_path
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.landing.database import SourceReadError
from medallion_assets.engine.landing.extract import extract_object
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets_tests.sql_servers import execute, temporary_database

DAY = date(2026, 1, 1)

DDL = {
    "postgresql": """CREATE TABLE typed (
        id bigint PRIMARY KEY, small smallint, whole integer, big bigint, amount numeric(18,4),
        ratio double precision, label text, flag boolean, day date, at timestamp, at_tz timestamptz,
        clock time, token uuid, doc jsonb, payload bytea, modified_at timestamp NOT NULL)""",
    "mariadb": """CREATE TABLE typed (
        id BIGINT PRIMARY KEY, small SMALLINT, whole INT, big BIGINT, amount DECIMAL(18,4),
        ratio DOUBLE, label TEXT, flag BOOLEAN, day DATE, at DATETIME(6), at_tz TIMESTAMP(6) NULL,
        clock TIME(6), token UUID, doc JSON, payload BLOB, modified_at DATETIME(6) NOT NULL)""",
    "sqlite": """CREATE TABLE typed (
        id INTEGER PRIMARY KEY, small SMALLINT, whole INTEGER, big BIGINT, amount NUMERIC(18,4),
        ratio REAL, label TEXT, flag BOOLEAN, day DATE, at DATETIME, at_tz DATETIME,
        clock TIME, token VARCHAR(36), doc JSON, payload BLOB, modified_at DATETIME NOT NULL)""",
}
# The same instant written in each database's own way; at_tz is 01:04:05.5 UTC everywhere.
AT_TZ = {"postgresql": "'2026-01-02 03:04:05.5+02'", "mariadb": "'2026-01-02 01:04:05.5'", "sqlite": "'2026-01-02 01:04:05.500000'"}
TRUE = {"postgresql": "true", "mariadb": "1", "sqlite": "1"}
BLOB = {"postgresql": "'\\xdeadbeef'::bytea", "mariadb": "x'deadbeef'", "sqlite": "x'deadbeef'"}
AMOUNT = {"postgresql": "12345678901234.5678", "mariadb": "12345678901234.5678", "sqlite": "1234.5678"}


def insert_rows(kind: str) -> str:
    return f"""INSERT INTO typed VALUES
        (1, -32768, 2147483647, 9223372036854775807, {AMOUNT[kind]}, 0.1, 'Zoë "quoted", comma', {TRUE[kind]},
         '2026-01-02', '2026-01-02 03:04:05.123456', {AT_TZ[kind]}, '12:34:56.789',
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": [1, 2]}}', {BLOB[kind]}, '2026-01-01 09:00:00'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-01-01 10:00:00')"""


def expected(kind: str) -> list[dict]:
    amount = Decimal(AMOUNT[kind])
    doc = '{"a": [1, 2]}' if kind != "postgresql" else '{"a": [1, 2]}'
    first = {
        "id": 1, "small": -32768, "whole": 2147483647, "big": 9223372036854775807, "amount": amount, "ratio": 0.1,
        "label": 'Zoë "quoted", comma', "flag": True, "day": date(2026, 1, 2), "at": datetime(2026, 1, 2, 3, 4, 5, 123456),
        "at_tz": datetime(2026, 1, 2, 1, 4, 5, 500000), "clock": "12:34:56.789000",
        "token": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "doc": doc, "payload": b"\xde\xad\xbe\xef",
        "modified_at": datetime(2026, 1, 1, 9),
    }
    second = {name: None for name in first} | {"id": 2, "modified_at": datetime(2026, 1, 1, 10)}
    return [first, second]


def system_for(**obj) -> SourceSystem:
    return SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "sql_database", "url_env": "SHOP_DATABASE_URL"},
            "objects": {"typed": {"extract_mode": "full", "primary_key": ["id"], "format": "parquet", **obj}},
        }
    )


def base_table() -> BaseTable:
    return BaseTable.model_validate(
        {
            "object": "typed", "source": "shop", "name": "shop_typed", "landing": [{"source": "shop", "object": "typed"}],
            "format": "parquet", "write_behaviour": "scd1", "business_keys": ["id"], "modify_date_column": "modified_at",
        }
    )


@pytest.mark.parametrize("kind", ["postgresql", "mariadb", "sqlite"])
def test_every_common_type_lands_in_base_with_its_exact_value(kind, tmp_path):
    with temporary_database(kind, tmp_path) as url:
        execute(url, DDL[kind], insert_rows(kind))
        system = system_for()
        result = extract_object(tmp_path, system, system.objects["typed"], DAY, partition_start=DAY, database_url=url)
    (landed,) = result.landed
    landed_table = pq.read_table(landed.path)
    assert str(landed_table.schema.field("amount").type) == ("decimal128(18, 4)")
    assert str(landed_table.schema.field("at_tz").type) == "timestamp[us, tz=UTC]" or kind == "sqlite"

    load_partition(base_table(), tmp_path, DAY)
    stored = DeltaTable(str(table_path(tmp_path, base_table()))).to_pyarrow_table().sort_by("id")
    rows = [{k: v for k, v in row.items() if not k.startswith("lh_")} for row in stored.to_pylist()]
    want = expected(kind)
    if kind == "postgresql":
        want[0]["doc"] = '{"a": [1, 2]}'  # jsonb keeps its own normal form
    for got, row in zip(rows, want, strict=True):
        assert got == row


def test_a_type_that_cannot_be_landed_names_source_table_and_column(tmp_path):
    with temporary_database("postgresql", tmp_path) as url:
        execute(url, "CREATE TABLE typed (id bigint PRIMARY KEY, wait interval)", "INSERT INTO typed VALUES (1, '1 day')")
        system = system_for()
        with pytest.raises(SourceReadError) as failure:
            extract_object(tmp_path, system, system.objects["typed"], DAY, partition_start=DAY, database_url=url)
    message = str(failure.value)
    assert "source 'shop'" in message and "table 'typed'" in message and "column 'wait'" in message
    assert "interval" in message and not failure.value.transient
    assert not list((tmp_path / "landing").rglob("*.parquet")) if (tmp_path / "landing").exists() else True
