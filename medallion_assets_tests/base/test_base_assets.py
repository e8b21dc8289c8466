"""The Base assets in Dagster: keys, deps, partitions, metadata; materialized against tmp_path."""

from datetime import date, datetime

import dagster as dg
import pyarrow as pa

from medallion_assets.base.assets import build_base_asset, build_base_assets
from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.base.model import BaseTable, load_base_tables
from medallion_assets.engine.storage.files import write_table_file
from medallion_assets.engine.storage.paths import landing_file_path


def customer_table(**overrides) -> BaseTable:
    spec = {
        "object": "customer", "source": "erp", "name": "erp_customer",
        "landing": [{"source": "erp", "object": "customer"}], "format": "csv",
        "write_behaviour": "scd2", "business_keys": ["customer_id"], "modify_date_column": "modified_at",
    }
    return BaseTable.model_validate({**spec, **overrides})


def test_asset_shape_follows_the_contract():
    asset = build_base_asset(table=customer_table())
    key = dg.AssetKey(["base", "erp_customer"])
    assert asset.key == key
    assert asset.group_names_by_key[key] == "base"
    assert asset.partitions_def == daily_partitions()
    assert dg.AssetKey(["landing", "erp_customer"]) in asset.asset_deps[key]
    assert set(asset.specs_by_key[key].kinds) == {"deltalake", "duckdb"}


def test_include_false_leaves_the_table_out():
    tables = [customer_table(), customer_table(name="erp_customer_copy", include=False)]
    assert [a.key.path[-1] for a in build_base_assets(tables)] == ["erp_customer"]
    assert len(build_base_assets(load_base_tables())) == 5


def test_materialize_reports_counts_version_schema_and_preview(tmp_path):
    schema = pa.schema([("customer_id", pa.int64()), ("segment", pa.string()), ("modified_at", pa.timestamp("us"))])
    day = date(2026, 1, 2)
    rows = pa.Table.from_pylist(
        [{"customer_id": 1, "segment": "a", "modified_at": datetime(2026, 1, 2, 9)},
         {"customer_id": 2, "segment": "b", "modified_at": datetime(2026, 1, 2, 9)}], schema=schema)
    write_table_file(rows, landing_file_path(
        tmp_path, "erp", "customer", "full", day, extracted_at=datetime(2026, 1, 2, 22), fmt="csv"
    ), "csv")
    table = customer_table()
    resources = {"lakehouse": LakehouseResource(data_dir=str(tmp_path))}
    result = dg.materialize([build_base_asset(table=table)], partition_key="2026-01-02", resources=resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node("base__erp_customer")
    meta = materialization.metadata
    assert meta["rows_read"].value == 2 and meta["inserted"].value == 2 and meta["soft_deleted"].value == 0
    assert meta["replaced"].value == 0 and meta["unchanged"].value == 0 and meta["quarantined"].value == 0
    assert meta["delta_version"].value == 0
    assert "lh_valid_from" in [c.name for c in meta["dagster/column_schema"].value.columns]
    assert "customer_id" in meta["preview"].value
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"keyed_invariants": True, "keys_not_null": True, "quarantined_rows": True}
    again = dg.materialize([build_base_asset(table=table)], partition_key="2026-01-02", resources=resources)
    [second] = again.asset_materializations_for_node("base__erp_customer")
    assert second.metadata["status"].value == "up_to_date" and second.metadata["inserted"].value == 0


def test_bad_landing_file_fails_the_run(tmp_path):
    day = date(2026, 1, 2)
    path = landing_file_path(tmp_path, "erp", "customer", "full", day, extracted_at=datetime(2026, 1, 2, 22), fmt="csv")
    path.parent.mkdir(parents=True)
    path.write_text("segment,modified_at\na,2026-01-02 09:00:00\n")
    resources = {"lakehouse": LakehouseResource(data_dir=str(tmp_path))}
    asset = build_base_asset(table=customer_table())  # default retries: bad input is not retried
    result = dg.materialize([asset], partition_key="2026-01-02", resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "business key column 'customer_id' is missing" in failure.step_failure_data.user_failure_data.description
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
