"""SQL text helpers against real DuckDB and a real Delta table: hostile names and values stay
inert, and every literal reads back as the value it was made from."""

from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from medallion_assets.engine.base.schema import BaseLoadError, normalise_names
from medallion_assets.engine.sqltext import (
    InvalidName,
    check_name,
    is_snake_case,
    literal,
    path_literal,
    qualified,
    quote_identifier,
    quote_name,
    string_literal,
    timestamp_literal,
    to_snake_case,
)

HOSTILE = ['a"b', 'x"; DROP TABLE t; --', "it's", "Upper Case", "", 'end"', "naïve"]


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.mark.parametrize("name", ["customer_id", "dim_customer", "c_2024", "a", "x1_"])
def test_snake_case_names_pass(name):
    assert is_snake_case(name) and check_name(name) == name


@pytest.mark.parametrize("name", ["Customer", "2x", "a-b", "_a", "", "a b", "customer\n", "é", None, 3])
def test_other_names_are_refused_with_what_they_are(name):
    assert not is_snake_case(name)
    with pytest.raises(InvalidName, match=r"^result column .* must be lower snake_case"):
        check_name(name, what="result column")


def test_quote_name_checks_before_quoting():
    assert quote_name("customer_key") == '"customer_key"'
    with pytest.raises(InvalidName, match="table 'Dim'"):
        quote_name("Dim", what="table")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CustomerName", "customer_name"),
        ("Customer Name", "customer_name"),
        ("customer-name", "customer_name"),
        ("  HTTPServer__Port ", "http_server_port"),
        ("2024 Sales", "c_2024_sales"),
        ("orderID", "order_id"),
        ("já", "j"),
    ],
)
def test_to_snake_case(raw, expected):
    assert to_snake_case(raw) == expected
    assert is_snake_case(to_snake_case(raw))


def test_to_snake_case_refuses_a_name_without_letters_or_digits():
    with pytest.raises(InvalidName, match="has no letters or digits"):
        to_snake_case(" -- ")


@settings(deadline=None)  # the first call imports pyarrow.compute
@given(st.text(max_size=30))
def test_base_renames_landing_columns_by_the_rule(raw):
    table = pa.table({raw: [1]})
    try:
        expected = to_snake_case(raw)
    except InvalidName:
        with pytest.raises(BaseLoadError, match=r"^orders\.csv: column name .* has no letters or digits"):
            normalise_names(table, "orders.csv")
        return
    assert normalise_names(table, "orders.csv").column_names == [expected]


@pytest.mark.parametrize("name", [n for n in HOSTILE if n])  # DuckDB has no zero-length identifiers
def test_quoted_identifiers_stay_one_column_name(con, name):
    con.execute(f"CREATE TABLE t ({quote_identifier(name)} INTEGER)")
    con.execute(f"INSERT INTO t ({quote_identifier(name)}) VALUES (7)")
    assert con.execute(f"SELECT {quote_identifier(name)} FROM t").fetchall() == [(7,)]
    assert [row[0] for row in con.execute("DESCRIBE t").fetchall()] == [name]


def test_qualified_quotes_every_part(con):
    table = qualified("my schema", 'odd"table')
    con.execute(f"CREATE SCHEMA {quote_identifier('my schema')}")
    con.execute(f"CREATE TABLE {table} AS SELECT 1 AS x")
    assert con.execute(f"SELECT x FROM {table}").fetchall() == [(1,)]
    assert con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall() == [("my schema", 'odd"table')]


@pytest.mark.parametrize("text", HOSTILE + ["'; SELECT 1; --", "line\nbreak", "\\'"])
def test_string_literals_read_back_unchanged(con, text):
    assert con.execute(f"SELECT {string_literal(text)}").fetchall() == [(text,)]


def test_path_literal_in_copy_and_read_parquet(con, tmp_path):
    folder = tmp_path / "it's here"
    folder.mkdir()
    target = folder / "o'brien.parquet"
    con.execute(f"COPY (SELECT 42 AS answer) TO {path_literal(target)} (FORMAT parquet)")
    assert target.is_file()
    assert con.execute(f"SELECT answer FROM read_parquet({path_literal(target)})").fetchall() == [(42,)]


def test_timestamp_literal_keeps_microseconds(con):
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert con.execute(f"SELECT {timestamp_literal(moment)}").fetchall() == [(moment,)]
    assert timestamp_literal(datetime(9999, 12, 31)) == "TIMESTAMP '9999-12-31 00:00:00'"


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 2**62, Decimal("12.34"), 1e20, date(2026, 1, 31), datetime(2026, 1, 31, 23, 59, 59, 1), "O'Brien"],
)
def test_literals_read_back_in_duckdb(con, value):
    assert con.execute(f"SELECT {literal(value)}").fetchall() == [(value,)]


def test_a_float_literal_equals_the_double_it_came_from(con):
    assert con.execute(f"SELECT CAST(? AS DOUBLE) = {literal(0.1)}", [0.1]).fetchall() == [(True,)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_values_without_a_literal_are_refused(value):
    with pytest.raises(ValueError, match="has no SQL literal"):
        literal(value)


def test_unknown_types_and_zoned_timestamps_are_refused():
    with pytest.raises(TypeError, match="cannot write a bytes value"):
        literal(b"x")
    with pytest.raises(ValueError, match="time zone"):
        literal(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="time zone"):
        timestamp_literal(datetime(2026, 1, 1, tzinfo=UTC))


def test_literals_work_in_deltalake_predicates(tmp_path):
    path = str(tmp_path / "t")
    rows = pa.table(
        {
            "name": ["O'Brien", "plain", "x' OR '1'='1"],
            "day": pa.array([date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)], pa.date32()),
            "at": pa.array([datetime(2026, 1, 1, 9), datetime(2026, 1, 2, 9), datetime(2026, 1, 3, 9)], pa.timestamp("us")),
        }
    )
    write_deltalake(path, rows)
    table = DeltaTable(path)
    obrien = literal("O'Brien")
    table.delete(f"{quote_identifier('name')} = {obrien}")
    table.delete(f"day = {literal(date(2026, 1, 2))} AND at >= {literal(datetime(2026, 1, 2, 9))}")
    assert DeltaTable(path).to_pyarrow_table().column("name").to_pylist() == ["x' OR '1'='1"]
