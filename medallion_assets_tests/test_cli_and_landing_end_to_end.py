"""The `medallion` command on a temporary data directory, then the landing layer on top of it."""

import subprocess
import sys
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.sources import load_sources
from medallion_assets.engine.storage.paths import list_landing_files
from medallion_assets.landing.assets import build_landing_assets

pytestmark = pytest.mark.slow  # the medallion command and the landing assets on a generated sample


def medallion(data_dir, *args):
    return subprocess.run(
        [sys.executable, "-m", "medallion_assets.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("lake")
    done = medallion(
        data_dir, "sample", "generate", "--days", "4", "--customers", "300", "--order-lines", "3000", "--seed", "7",
        "--start-date", "2026-01-01",
    )
    assert done.returncode == 0, done.stderr
    assert "sample written" in done.stdout
    return data_dir


def test_generate_writes_the_database_and_every_days_extracts(sample_dir):
    assert (sample_dir / "sources" / "erp.duckdb").is_file()
    assert list((sample_dir / "sources" / "drops" / "finance").glob("budget_*.csv"))
    customer = list_landing_files(sample_dir, "erp", "customer")
    assert [(f.partition_date.day, f.load_type) for f in customer] == [
        (1, "full"),
        (2, "delta"),
        (2, "keys"),
        (3, "delta"),
        (3, "keys"),
        (4, "delta"),
        (4, "keys"),
    ]
    assert not [p for p in sample_dir.rglob(".*") if p.is_file()], "no temporary files may remain"
    assert not list(sample_dir.glob(".sample-staging-*"))


def test_generate_refuses_to_overwrite_an_existing_sample(sample_dir):
    again = medallion(sample_dir, "sample", "generate", "--days", "2")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_landing_assets_keep_generated_extracts_then_extract_an_advanced_day(sample_dir):
    assets = build_landing_assets(load_sources())
    resources = {"lakehouse": LakehouseResource(data_dir=str(sample_dir))}
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"):
            result = dg.materialize(assets, partition_key=day, instance=instance, resources=resources)
            statuses = {e.asset_key.path[1]: e.materialization.metadata["status"].value for e in result.get_asset_materialization_events()}
            assert statuses["erp_customer"] == "kept"
        before = len(list_landing_files(sample_dir, "erp", "sales_order_line"))

        advanced = medallion(sample_dir, "sample", "advance", "--days", "1")
        assert advanced.returncode == 0, advanced.stderr
        result = dg.materialize(assets, partition_key="2026-01-05", instance=instance, resources=resources)
        metadata = {e.asset_key.path[1]: e.materialization.metadata for e in result.get_asset_materialization_events()}

    lines = metadata["erp_sales_order_line"]
    assert lines["status"].value == "extracted"
    assert lines["files"].value == 2  # a delta and a keys extract, since the last full was on day 1
    new_files = list_landing_files(sample_dir, "erp", "sales_order_line", partition_date=date(2026, 1, 5))
    assert len(list_landing_files(sample_dir, "erp", "sales_order_line")) == before + 2
    delta = next(f for f in new_files if f.load_type == "delta")
    con = duckdb.connect()
    (count, earliest) = con.execute(f"select count(*), min(modified_at) from read_parquet('{delta.path}')").fetchall()[0]
    assert count == lines["rows"].value > 0
    # The extract started from the watermark recorded on day 4, less the 48-hour lookback.
    assert earliest.date() >= date(2026, 1, 2)


def test_bad_input_is_a_clear_error(tmp_path):
    missing = medallion(tmp_path, "sample", "advance")
    assert missing.returncode == 2 and "run `medallion sample generate` first" in missing.stderr
    bad_days = medallion(tmp_path, "sample", "generate", "--days", "0")
    assert bad_days.returncode == 2 and "must be a positive whole number" in bad_days.stderr


def test_the_default_sample_ends_yesterday_and_its_partitions_start_on_its_first_day(tmp_path, monkeypatch):
    from medallion_assets.common.partitions import daily_partitions
    from medallion_assets.engine.storage.paths import list_landing_files as landed

    done = medallion(tmp_path, "sample", "generate", "--days", "2", "--customers", "50", "--order-lines", "200")
    assert done.returncode == 0, done.stderr
    today = date.today()
    days = sorted({f.partition_date for f in landed(tmp_path, "erp", "customer")})
    assert days == [today - timedelta(days=2), today - timedelta(days=1)]
    monkeypatch.setenv("MEDALLION_DATA_DIR", str(tmp_path))
    partitions = daily_partitions()
    assert partitions.get_first_partition_key() == str(today - timedelta(days=2))
    # every landed day is a partition, so a demo leaves no partition of landing or base missing
    keys = partitions.get_partition_keys()
    assert keys[: len(days)] == [str(d) for d in days]


def test_a_landed_file_stamped_on_another_day_is_reported():
    from pathlib import Path

    from medallion_assets.engine.landing.extract import extract_day_mismatch
    from medallion_assets.engine.outcome import WrittenFile

    def file(stamp: str) -> WrittenFile:
        path = Path(f"/lake/landing/erp/customer/full/2026/01/05/customer_full_{stamp}.csv")
        return WrittenFile(path=path, load_type="full", rows=1, bytes=1)

    same_day = [file("20260105T220000"), file("20260106T020000")]
    assert extract_day_mismatch(date(2026, 1, 5), same_day) == ""  # the nightly run stamps the morning after: expected
    stale = [file("20260102T220000")]
    assert extract_day_mismatch(date(2026, 1, 5), stale) == (
        "partition 2026-01-05: 1 file(s) stamped on another day: customer_full_20260102T220000.csv"
    )
