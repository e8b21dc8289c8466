"""The Base asset checks on a real load: keys present, quarantined rows reported as a warning."""

from datetime import date, datetime

import dagster as dg
import pyarrow as pa

from medallion_assets.base.assets import base_asset_key, build_base_asset
from medallion_assets.base.checks import build_base_checks
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.storage.files import write_table_file
from medallion_assets.engine.storage.paths import landing_file_path


def test_checks_report_keys_and_quarantined_rows(tmp_path):
    table = BaseTable.model_validate(
        {
            "object": "customer", "source": "erp", "name": "erp_customer",
            "landing": [{"source": "erp", "object": "customer"}], "format": "csv",
            "write_behaviour": "scd1", "business_keys": ["customer_id"], "modify_date_column": "modified_at",
            "quality_rules": [{"name": "segment_known", "column": "segment", "allowed_values": ["a", "b"]}],
        }
    )
    schema = pa.schema([("customer_id", pa.int64()), ("segment", pa.string()), ("modified_at", pa.timestamp("us"))])
    rows = pa.Table.from_pylist(
        [
            {"customer_id": 1, "segment": "a", "modified_at": datetime(2026, 1, 2, 9)},
            {"customer_id": 2, "segment": "zzz", "modified_at": datetime(2026, 1, 2, 9)},
        ],
        schema=schema,
    )
    day = date(2026, 1, 2)
    write_table_file(rows, landing_file_path(
        tmp_path, "erp", "customer", "full", day, extracted_at=datetime(2026, 1, 2, 22), fmt="csv"
    ), "csv")
    asset = build_base_asset(table=table)
    # The checks are declared on the asset itself (one step), with their descriptions.
    specs = {spec.name: spec for spec in asset.check_specs}
    assert sorted(specs) == ["keyed_invariants", "keys_not_null", "quarantined_rows"]
    assert all(spec.description for spec in specs.values())
    partitions_def = asset.partitions_def
    assert specs == {
        s.name: s for s in build_base_checks(table=table, asset_key=base_asset_key(table), partitions_def=partitions_def).specs
    }
    assert all(spec.partitions_def == partitions_def for spec in specs.values())
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset],
        partition_key="2026-01-02",
        resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
        instance=instance,
    )
    assert result.success
    # Each check's execution is recorded once, for the partition the step loaded (the Checks tab
    # lists and plots it per partition; nothing is left planned-and-skipped).
    for name in specs:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(base_asset_key(table), name), limit=10
        )
        status = "FAILED" if name == "quarantined_rows" else "SUCCEEDED"  # the warning above
        assert [(r.status.value, r.partition) for r in history] == [(status, "2026-01-02")], name
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["keyed_invariants"].passed and evaluations["keys_not_null"].passed
    quarantined = evaluations["quarantined_rows"]
    assert not quarantined.passed and quarantined.severity == dg.AssetCheckSeverity.WARN
    assert quarantined.metadata["quarantined_rows"].value == 1
    # Evaluated in the step that materialized the table: one step, no step per check.
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"] == ["base__erp_customer"]
