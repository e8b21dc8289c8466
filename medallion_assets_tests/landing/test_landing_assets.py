from datetime import datetime

import dagster as dg
import duckdb
import pytest

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import list_landing_files
from medallion_assets.landing.assets import build_landing_asset, previous_watermark


@pytest.fixture
def system() -> SourceSystem:
    return SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "duckdb", "database": "sources/shop.duckdb", "clock_query": "select now_ts from clock"},
            "objects": {
                "customer": {
                    "extract_mode": "incremental",
                    "watermark_column": "modified_at",
                    "primary_key": ["customer_id"],
                    "keys_extract": True,
                    "format": "parquet",
                    "retry": {"max_retries": 0},
                }
            },
        }
    )


def materialize(asset, tmp_path, instance, partition_key, force=False):
    return dg.materialize(
        [asset],
        partition_key=partition_key,
        instance=instance,
        resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
        run_config={"ops": {asset.op.name: {"config": {"force_reextract": force}}}},
    )


def metadata_of(result, key):
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_asset_key_group_and_partitions(system):
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    assert asset.key == dg.AssetKey(["landing", "shop_customer"])
    assert asset.group_names_by_key[asset.key] == "landing"
    assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)


def test_watermark_travels_through_dagster_records(tmp_path, system, source_db):
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    with dg.DagsterInstance.ephemeral() as instance:
        day1 = metadata_of(materialize(asset, tmp_path, instance, "2026-01-01"), asset.key)
        assert day1["status"] == "extracted" and day1["rows"] == 2
        assert day1["watermark"] == "2026-01-01T10:00:00"
        assert previous_watermark(instance, asset.key, "2026-01-02") == datetime(2026, 1, 1, 10)
        assert previous_watermark(instance, asset.key, "2026-01-01") is None

        con = duckdb.connect(str(source_db))
        con.execute("update clock set now_ts = '2026-01-02 22:00'")
        con.execute("insert into customer values (3, 'Cy', '2026-01-02 08:00')")
        con.close()
        day2 = metadata_of(materialize(asset, tmp_path, instance, "2026-01-02"), asset.key)
        assert day2["files"] == 2 and day2["rows"] == 1  # delta of one row, plus the keys file
        assert day2["watermark"] == "2026-01-02T08:00:00"

        # Re-running a landed day keeps its extract and reports it; nothing doubles.
        again = metadata_of(materialize(asset, tmp_path, instance, "2026-01-02"), asset.key)
        assert again["status"] == "kept" and again["rows"] == 1
        assert len(list_landing_files(tmp_path, "shop", "customer")) == 3

        forced = metadata_of(materialize(asset, tmp_path, instance, "2026-01-02", force=True), asset.key)
        assert forced["status"] == "extracted"
        assert len(list_landing_files(tmp_path, "shop", "customer")) == 3


def test_missing_source_fails_the_step_with_a_clear_message(tmp_path, system):
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [asset],
            partition_key="2026-01-01",
            instance=instance,
            resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "shop.duckdb does not exist" in str(failure.step_failure_data.error)


def test_retry_policy_and_timeout_come_from_metadata(system):
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    assert asset.op.retry_policy.max_retries == 0
    default = build_landing_asset(system=system, obj=system.objects["customer"].model_copy(update={"retry": None}))
    assert default.op.retry_policy.max_retries == 2
    assert default.op.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    assert default.op.retry_policy.jitter == dg.Jitter.PLUS_MINUS
