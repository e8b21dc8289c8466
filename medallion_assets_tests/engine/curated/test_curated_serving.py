"""The serving database: a view per Delta table, latest version, openable by a fresh client."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from medallion_assets.engine.serving import refresh_serving_views


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_views_follow_the_latest_version_and_skip_private_folders(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "base" / "erp_x"), pa.table({"a": [1, 2]}))
    write_deltalake(str(tmp_path / "curated" / "dim_y"), pa.table({"b": pa.array([], pa.string())}))
    write_deltalake(str(tmp_path / "curated" / "_hidden"), pa.table({"c": [1]}))
    db = refresh_serving_views(tmp_path)
    assert db == tmp_path.resolve() / "warehouse.duckdb"
    assert _query(db, "SELECT sum(a) FROM base.erp_x") == [(3,)]
    assert _query(db, "SELECT count(*) FROM curated.dim_y") == [(0,)]
    tables = _query(db, "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1, 2")
    assert tables == [("base", "erp_x")]
    write_deltalake(str(tmp_path / "base" / "erp_x"), pa.table({"a": [10]}), mode="overwrite")
    write_deltalake(str(tmp_path / "curated" / "dim_y"), pa.table({"b": ["z"]}), mode="append")
    refresh_serving_views(tmp_path, ["base.erp_x", "dim_y"])
    assert _query(db, "SELECT sum(a) FROM base.erp_x") == [(10,)]
    assert _query(db, "SELECT b FROM curated.dim_y") == [("z",)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_refreshes_serialise_and_unknown_tables_fail(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "base" / "erp_x"), pa.table({"a": [1]}))
    with ThreadPoolExecutor(4) as pool:
        dbs = list(pool.map(lambda _: refresh_serving_views(tmp_path), range(4)))
    assert _query(dbs[0], "SELECT count(*) FROM base.erp_x") == [(1,)]
    with pytest.raises(FileNotFoundError, match="curated.dim_nope"):
        refresh_serving_views(tmp_path, ["curated.dim_nope"])
