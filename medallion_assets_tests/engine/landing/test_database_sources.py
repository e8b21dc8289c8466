"""Extract modes and errors against a real PostgreSQL (and MariaDB for wrong credentials)."""

from datetime import date, datetime

import pyarrow.parquet as pq
import pytest

from medallion_assets.engine.landing.database import SourceReadError, SqlSource, redact
from medallion_assets.engine.landing.extract import extract_object
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import list_landing_files
from medallion_assets_tests.sql_servers import execute, temporary_database

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


@pytest.fixture
def pg(tmp_path):
    with temporary_database("postgresql", tmp_path) as url:
        execute(
            url,
            "CREATE TABLE clock (now_ts timestamp)",
            "INSERT INTO clock VALUES ('2026-01-01 22:00')",
            "CREATE TABLE customer (customer_id bigint PRIMARY KEY, name text, modified_at timestamp NOT NULL)",
            "INSERT INTO customer VALUES (1, 'Ann', '2026-01-01 09:00'), (2, 'Bob', '2026-01-01 10:00')",
            "CREATE TABLE region (customer_id bigint, region text)",
            "INSERT INTO region VALUES (1, 'Europe'), (2, 'Asia Pacific')",
        )
        yield url


def make_system(**obj) -> SourceSystem:
    customer = {
        "extract_mode": "incremental",
        "watermark_column": "modified_at",
        "watermark_lookback_hours": 24,
        "primary_key": ["customer_id"],
        "keys_extract": True,
        "format": "parquet",
        **obj,
    }
    return SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "sql_database", "url_env": "SHOP_DATABASE_URL", "clock_query": "select now_ts from clock"},
            "objects": {"customer": customer},
        }
    )


def extract(tmp_path, url, day, system=None, **kwargs):
    system = system or make_system()
    return extract_object(tmp_path, system, system.objects["customer"], day, partition_start=D1, database_url=url, **kwargs)


def rows_of(result, load_type):
    (written,) = [f for f in result.landed if f.load_type == load_type]
    return sorted(pq.read_table(written.path).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def test_incremental_catches_late_rows_within_the_lookback_and_keys_reveal_deletes(tmp_path, pg):
    first = extract(tmp_path, pg, D1)
    assert [f.load_type for f in first.landed] == ["full"] and first.rows_read == 2
    assert first.watermark == datetime(2026, 1, 1, 10) and first.extracted_at == datetime(2026, 1, 1, 22)

    execute(
        pg,
        "UPDATE clock SET now_ts = '2026-01-02 22:00'",
        "INSERT INTO customer VALUES (3, 'Cem', '2026-01-02 08:00')",
        "INSERT INTO customer VALUES (4, 'Late', '2026-01-01 07:00')",  # late, inside the 24 h lookback
        "INSERT INTO customer VALUES (5, 'Too late', '2025-12-30 07:00')",  # older than the lookback
        "DELETE FROM customer WHERE customer_id = 2",
    )
    second = extract(tmp_path, pg, D2, previous_watermark=first.watermark)
    assert [f.load_type for f in second.landed] == ["delta", "keys"]
    assert [r["customer_id"] for r in rows_of(second, "delta")] == [1, 3, 4]
    assert [r["customer_id"] for r in rows_of(second, "keys")] == [1, 3, 4, 5]  # 2 was hard-deleted
    assert second.watermark == datetime(2026, 1, 2, 8)

    third = extract(tmp_path, pg, D3, previous_watermark=second.watermark)  # nothing new: watermark stays
    assert [r["customer_id"] for r in rows_of(third, "delta")] == [1, 3]  # the lookback re-reads a day
    assert third.watermark == datetime(2026, 1, 2, 8)


def test_a_custom_query_gets_the_watermark_as_a_bound_parameter(tmp_path, pg):
    query = """select c.customer_id, c.name, r.region, c.modified_at
               from customer c join region r on r.customer_id = c.customer_id where r.region <> 'nowhere'"""
    system = make_system(query=query, keys_extract=False, watermark_lookback_hours=0)
    first = extract(tmp_path, pg, D1, system=system)
    assert rows_of(first, "full")[0] == {
        "customer_id": 1, "name": "Ann", "region": "Europe", "modified_at": datetime(2026, 1, 1, 9)
    }
    execute(pg, "UPDATE customer SET name = 'Ann B', modified_at = '2026-01-02 09:00' WHERE customer_id = 1")
    second = extract(tmp_path, pg, D2, system=system, previous_watermark=datetime(2026, 1, 2, 0))
    assert [r["name"] for r in rows_of(second, "delta")] == ["Ann B"]


def test_a_full_extract_mode_and_included_columns(tmp_path, pg):
    system = make_system(extract_mode="full", watermark_column=None, keys_extract=False, columns=["customer_id", "name"])
    result = extract(tmp_path, pg, D1, system=system)
    assert rows_of(result, "full") == [{"customer_id": 1, "name": "Ann"}, {"customer_id": 2, "name": "Bob"}]


@pytest.mark.parametrize(
    ("obj", "statements", "expected"),
    [
        ({"table": "missing_table"}, [], 'relation "missing_table" does not exist'),
        ({"columns": ["customer_id", "nope"]}, [], 'column "nope" does not exist'),
        ({"watermark_column": "name"}, [], "watermark column 'name' is string, not a timestamp"),
        ({"primary_key": ["customer_no"]}, [], "field 'primary_key': column 'customer_no' is not in what source 'shop'"),
        ({"watermark_column": "changed_at"}, [], "field 'watermark_column': column 'changed_at' is not in the extract"),
        (
            {"query": "select c.customer_id, c.customer_id, c.modified_at from customer c", "keys_extract": False},
            [],
            "duplicate column names ['customer_id']",
        ),
    ],
    ids=["missing table", "missing column", "text watermark", "missing primary key", "missing watermark", "duplicate columns"],
)
def test_bad_objects_fail_clearly_and_keep_what_already_landed(tmp_path, pg, obj, statements, expected):
    landed = extract(tmp_path, pg, D1)  # a good extract, already in place
    system = make_system(**obj)
    with pytest.raises(SourceReadError) as failure:
        extract(tmp_path, pg, D1, system=system, force=True)
    message = str(failure.value)
    assert expected in message and "source 'shop'" in message and "object 'customer'" in message
    assert not failure.value.transient
    assert [f.path for f in list_landing_files(tmp_path, "shop", "customer")] == [f.path for f in landed.landed]
    assert not [p for p in (tmp_path / "landing").rglob("*") if p.name.startswith(".")]


SECRET = "Pa55-s3cret-do-not-log"


@pytest.mark.parametrize(
    ("url", "transient"),
    [
        (f"postgresql://medallion:{SECRET}@127.0.0.1:1/erp", True),  # nothing listens on port 1
        (f"postgresql://no_such_role_h9:{SECRET}@127.0.0.1:5432/postgres", False),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/mysql", False),  # wrong password
    ],
    ids=["unreachable", "unknown role", "wrong password"],
)
def test_connection_errors_name_the_source_never_the_password(tmp_path, url, transient):
    with pytest.raises(SourceReadError) as failure:
        extract(tmp_path, url, D1)
    text = str(failure.value)
    assert "source 'shop'" in text and SECRET not in text and "cannot connect" in text
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
    assert failure.value.transient is transient
    assert not (tmp_path / "landing").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql+mysqldb://root:{SECRET}@127.0.0.1:3306/mysql", "names the driver 'mysqldb', which is not installed here"),
        (f"snowflake://u:{SECRET}@account/db", "no SQLAlchemy dialect for 'snowflake' is installed here"),
    ],
    ids=["driver not installed", "no dialect"],
)
def test_a_driver_that_is_not_installed_is_named_with_what_to_write(tmp_path, url, expected):
    with pytest.raises(SourceReadError) as failure:
        extract(tmp_path, url, D1)
    text = str(failure.value)
    assert expected in text and "source 'shop'" in text and SECRET not in text
    assert "medallion installs the drivers of postgresql://, mysql:// and mariadb://" in text
    assert failure.value.transient is False


def test_redact_removes_url_and_password():
    url = f"postgresql://u:{SECRET}@db:5432/erp"
    assert SECRET not in redact(f"failed for {url} and {SECRET} and mysql://x:y@h/d", url)
    assert "mysql://x:***@h/d" in redact("mysql://x:y@h/d", None)


def test_discover_finds_tables_keys_and_watermark_candidates(pg):
    from medallion_assets.engine.landing.discover import discover_source

    with SqlSource(source="shop", url=pg) as database:
        found = discover_source(database)
    customer = next(t for t in found if t.name == "customer")
    assert customer.primary_key == ["customer_id"] and customer.watermark_candidates == ["modified_at"]
    region = next(t for t in found if t.name == "region")
    assert region.primary_key == [] and region.extract_mode == "full"


def test_cli_discover_prints_starter_metadata_that_validates(pg, monkeypatch, capsys, tmp_path):
    import yaml

    from medallion_assets.cli import main

    monkeypatch.setenv("SHOP_DATABASE_URL", pg)
    assert main(["--data-dir", str(tmp_path), "sources", "discover", "shop", "--url-env", "SHOP_DATABASE_URL"]) == 0
    source_yaml, base_yaml = capsys.readouterr().out.split("\n---\n")
    system = SourceSystem.model_validate(yaml.safe_load(source_yaml))
    assert system.objects["customer"].extract_mode == "incremental"
    assert system.objects["customer"].watermark_column == "modified_at"
    assert yaml.safe_load(base_yaml)["tables"]["customer"]["business_keys"] == ["customer_id"]
    assert pg not in source_yaml + base_yaml


@pytest.mark.parametrize("kind", ["mariadb", "sqlite"])
def test_incremental_keys_and_query_through_sqlalchemy(kind, tmp_path):
    stamp = "DATETIME(6)" if kind == "mariadb" else "DATETIME"
    with temporary_database(kind, tmp_path) as url:
        execute(
            url,
            f"CREATE TABLE clock (now_ts {stamp})",
            "INSERT INTO clock VALUES ('2026-01-01 22:00:00')",
            f"CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(40), modified_at {stamp} NOT NULL)",
            "INSERT INTO customer VALUES (1, 'Ann', '2026-01-01 09:00:00'), (2, 'Bob', '2026-01-01 10:00:00')",
        )
        first = extract(tmp_path, url, D1)
        assert first.rows_read == 2 and first.watermark == datetime(2026, 1, 1, 10)
        execute(
            url,
            "UPDATE clock SET now_ts = '2026-01-02 22:00:00'",
            "INSERT INTO customer VALUES (3, 'Late', '2026-01-01 08:00:00')",
            "DELETE FROM customer WHERE customer_id = 2",
        )
        second = extract(tmp_path, url, D2, previous_watermark=first.watermark)
        assert [r["customer_id"] for r in rows_of(second, "delta")] == [1, 3]
        assert [r["customer_id"] for r in rows_of(second, "keys")] == [1, 3]

        if kind == "sqlite":
            return  # SQLite returns a query's timestamps as text: a query needs a typed database
        query = "select customer_id, upper(name) as shout, modified_at from customer"
        system = make_system(query=query, keys_extract=False, watermark_lookback_hours=0)
        shouted = extract(tmp_path / "q", url, D2, system=system, previous_watermark=datetime(2026, 1, 1, 8, 30))
        assert [(r["customer_id"], r["shout"]) for r in rows_of(shouted, "delta")] == [(1, "ANN")]
