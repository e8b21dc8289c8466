"""Base metadata: the sample validates; mistakes are errors naming the file, table and field."""

from pathlib import Path

import pytest

from medallion_assets.engine.base.model import load_base_file, load_base_tables
from medallion_assets.engine.metadata import MetadataError


def test_sample_metadata_loads_with_source_defaults():
    tables = {t.name: t for t in load_base_tables()}
    assert set(tables) == {"erp_customer", "erp_product", "erp_employee", "erp_sales_order_line", "finance_budget"}
    assert tables["erp_customer"].format == "csv" and tables["erp_customer"].read_options["delimiter"] == ","
    assert tables["erp_sales_order_line"].write_behaviour == "scd1"
    assert tables["erp_customer"].history_columns


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    write_behaviour: scd1\n", r"table 'customer'.*business_keys"),
        ("    write_behaviour: scd9\n    business_keys: [id]\n", r"table 'customer': field 'write_behaviour'"),
        ("    write_behaviour: scd1\n    business_keys: [Id]\n", r"table 'customer': field 'business_keys'"),
        ("    write_behaviour: scd1\n    business_keys: [id]\n    colour: red\n", r"table 'customer': field 'colour'"),
        ("    write_behaviour: scd1\n    business_keys: [id]\n    history_columns: [a]\n", r"history_columns"),
    ],
)
def test_invalid_metadata_names_file_table_and_field(tmp_path: Path, body: str, message: str):
    path = tmp_path / "erp.yaml"
    path.write_text("source: erp\ntables:\n  customer:\n    format: csv\n" + body)
    with pytest.raises(MetadataError, match=message) as info:
        load_base_file(path, sources_folder=tmp_path)
    assert str(path) in str(info.value)
