"""Fixtures shared across the suite."""

import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest

from medallion_assets_tests.s3_server import s3_lake, s3_server  # noqa: F401 (fixtures: the lake on S3)

# Partitions of the sample start on the first landed day under the data root; the suite never
# reads the checkout's data/ (a demo run there would move them), it starts from an empty root.
os.environ.setdefault("MEDALLION_DATA_DIR", tempfile.mkdtemp(prefix="medallion-test-data-"))


SHOP = Path(__file__).parent / "fixtures" / "shop_metadata"


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """A copy of the shop metadata folder (a team's own source), selected through
    MEDALLION_METADATA_DIR, and an empty lake in MEDALLION_DATA_DIR."""
    folder = tmp_path / "metadata"
    shutil.copytree(SHOP, folder)
    lake = tmp_path / "lake"
    lake.mkdir()
    monkeypatch.setenv("MEDALLION_METADATA_DIR", str(folder))
    monkeypatch.setenv("MEDALLION_DATA_DIR", str(lake))
    return folder


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
