"""Fixtures shared across the suite."""

import duckdb
import pytest


@pytest.fixture
def source_db(tmp_path):
    """A tiny source system at ``<tmp_path>/sources/shop.duckdb`` whose clock reads day 1, 22:00."""
    path = tmp_path / "sources" / "shop.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute("create table customer(customer_id bigint, name varchar, modified_at timestamp)")
    con.execute("insert into customer values (1, 'Ann', '2026-01-01 09:00'), (2, 'Bob', '2026-01-01 10:00')")
    con.execute("create table clock(now_ts timestamp)")
    con.execute("insert into clock values ('2026-01-01 22:00')")
    con.close()
    return path
