"""The Base asset checks on a real load: keys present, quarantined rows reported as a warning."""

from datetime import date, datetime

import dagster as dg
import pyarrow as pa

from medallion_assets.base.assets import build_base_asset
from medallion_assets.base.checks import build_base_checks
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.files import write_table_file
from medallion_assets.engine.paths import landing_file_path
from medallion_assets.resources import LakehouseResource


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
    write_table_file(rows, landing_file_path(tmp_path, "erp", "customer", "full", day, datetime(2026, 1, 2, 22), "csv"), "csv")
    checks = build_base_checks([table])
    assert sorted(spec.name for check in checks for spec in check.check_specs) == [
        "keyed_invariants",
        "keys_not_null",
        "quarantined_rows",
    ]
    result = dg.materialize(
        [build_base_asset(table=table), *checks],
        partition_key="2026-01-02",
        resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
    )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["keyed_invariants"].passed and evaluations["keys_not_null"].passed
    quarantined = evaluations["quarantined_rows"]
    assert not quarantined.passed and quarantined.severity == dg.AssetCheckSeverity.WARN
    assert quarantined.metadata["quarantined_rows"].value == 1
