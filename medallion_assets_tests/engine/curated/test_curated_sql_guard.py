"""Curated SQL may only read base/curated tables; dependency extraction; model validation errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from medallion_assets.engine.curated import CuratedError, load_curated_model, parse_select, run_select
from medallion_assets.engine.curated.sql import TableRef, sandbox
from medallion_assets.engine.metadata import MetadataError


def test_reads_are_extracted_from_ctes_joins_and_subqueries() -> None:
    sql = """WITH c AS (SELECT * FROM base.erp_customer)
             SELECT * FROM c JOIN curated.dim_product p ON true
             WHERE EXISTS (SELECT 1 FROM BASE.Erp_Employee) AND 1 IN (SELECT 1 FROM range(3))"""
    assert parse_select(sql, source="x.sql") == (
        TableRef("base", "erp_customer"), TableRef("base", "erp_employee"), TableRef("curated", "dim_product"))


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "only a single read-only SELECT"),
        ("ATTACH '/tmp/x.duckdb' AS x", "only a single read-only SELECT"),
        ("CREATE TABLE t AS SELECT 1", "only a single read-only SELECT"),
        ("INSERT INTO base.t SELECT 1", "only a single read-only SELECT"),
        ("INSTALL delta", "only a single read-only SELECT"),
        ("PRAGMA version", "only a single read-only SELECT"),
        ("SET threads = 1", "only a single read-only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function 'read_csv' is not allowed"),
        ("SELECT * FROM '/etc/passwd'", "must be qualified"),
        ("SELECT * FROM glob('*')", "table function 'glob'"),
        ("SELECT * FROM main.t", "only schemas base and curated"),
        ("SELECT * FROM other.base.t", "other catalogs"),
        ("SELEC 1", "syntax error"),
        ("  ", "empty"),
    ],
)
def test_writes_files_and_foreign_tables_are_refused(sql: str, message: str) -> None:
    with pytest.raises(CuratedError, match=message) as info:
        parse_select(sql, source="bad.sql")
    assert str(info.value).startswith("bad.sql: ")


def test_runtime_connection_has_no_file_access_and_a_locked_configuration(tmp_path: Path) -> None:
    # The second wall, should something slip past the static check: the sandbox itself refuses.
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with sandbox(tmp_path, [], source="x.sql") as con:
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            con.execute(f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')").fetchall()
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
    assert run_select("SELECT current_setting('enable_external_access') AS ext", tmp_path,
                      source="x.sql").column("ext").to_pylist() == [False]


def test_the_sandbox_reads_its_tables_folders_and_nothing_else_of_the_lake(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "base" / "x"), pa.table({"a": [1]}))
    (tmp_path / "base" / "secret.csv").write_text("a\n1\n")
    with sandbox(tmp_path, [TableRef("base", "x")], source="x.sql") as con:
        assert con.execute("SELECT a FROM base.x").fetchall() == [(1,)]  # DuckDB reads the table's own files
        with pytest.raises(duckdb.Error, match="Permission|disabled"):
            con.execute(f"SELECT * FROM read_csv('{tmp_path / 'base' / 'secret.csv'}')").fetchall()


def _write_model(folder: Path, yaml: str, sql: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml)
    for name, text in sql.items():
        (folder / name).write_text(text)
    return folder


def test_model_errors_name_the_file(tmp_path: Path) -> None:
    folder = _write_model(tmp_path / "a", "dimensions:\n  a: {}\n", {"dim_a.sql": "DELETE FROM base.x"})
    with pytest.raises(MetadataError, match=r"dim_a\.sql: SQL rejected"):
        load_curated_model(folder)
    folder = _write_model(tmp_path / "b", "dimensions:\n  a: {}\n", {"dim_a.sql": "SELECT * FROM curated.dim_zz"})
    with pytest.raises(MetadataError, match=r"dim_a\.sql: reads curated\.dim_zz, which is not a table"):
        load_curated_model(folder)
    folder = _write_model(tmp_path / "c", "dimensions:\n  a: {}\n  b: {}\n",
                          {"dim_a.sql": "SELECT * FROM curated.dim_b", "dim_b.sql": "SELECT * FROM curated.dim_a"})
    with pytest.raises(MetadataError, match="cycle"):
        load_curated_model(folder)
    folder = _write_model(tmp_path / "d", "facts:\n  f: {write_pattern: merge}\n", {"fact_f.sql": "SELECT 1 AS x"})
    with pytest.raises(MetadataError, match=r"model\.yaml: entry 'f': .*merge needs primary_key"):
        load_curated_model(folder)
    folder = _write_model(tmp_path / "e", "dimensions:\n  a: {}\n", {})
    with pytest.raises(MetadataError, match=r"dim_a\.sql cannot be read"):
        load_curated_model(folder)


def test_the_shipped_sample_model_is_valid() -> None:
    model = load_curated_model()
    assert set(model.dimensions) == {"customer", "product", "employee"}
    assert model.dimensions["customer"].is_scd2 and not model.dimensions["product"].is_scd2
    assert {"fact_sales", "bridge_customer_employee"} <= set(model.facts)
