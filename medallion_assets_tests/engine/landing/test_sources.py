import textwrap

import pytest

from medallion_assets.engine.landing.sources import load_source_file, load_sources
from medallion_assets.engine.metadata import MetadataError

VALID = """
source: shop
connection:
  type: duckdb
  database: sources/shop.duckdb
objects:
  orders:
    extract_mode: incremental
    watermark_column: modified_at
    primary_key: [order_id]
    format: parquet
"""


def write(tmp_path, text, name="shop.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_metadata_is_valid():
    systems = load_sources()
    assert set(systems) == {"erp", "finance"}
    assert set(systems["erp"].objects) == {"customer", "product", "employee", "sales_order_line"}
    assert systems["finance"].objects["budget"].file_pattern == "budget_*.csv"


def test_valid_file_loads(tmp_path):
    system = load_source_file(write(tmp_path, VALID))
    assert system.objects["orders"].watermark_column == "modified_at"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("extract_mode: incremental", "extract_mode: nightly"), r"object 'orders': field 'extract_mode'.*nightly"),
        (("format: parquet", "format: xlsx"), r"object 'orders': field 'format'.*xlsx"),
        (("    watermark_column: modified_at\n", ""), r"object 'orders'.*needs a watermark_column"),
        (("format: parquet", "format: parquet\n    colour: blue"), r"object 'orders': field 'colour'"),
        (("format: parquet", "format: parquet\n    read_options: {delimiter: ';'}"), r"read_options.*delimiter"),
        (("type: duckdb", "type: oracle"), r"field 'connection"),
        (("primary_key: [order_id]", "primary_key: [\"order_id; drop table x\"]"), r"lower snake_case"),
    ],
)
def test_invalid_metadata_names_file_entry_and_field(tmp_path, change, expected):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(MetadataError, match=expected) as info:
        load_source_file(path)
    assert str(path) in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "source: shop\nobjects: [unclosed\n")
    with pytest.raises(MetadataError, match=r"shop.yaml \(line \d+, column \d+\): malformed YAML"):
        load_source_file(path)


def test_source_name_must_match_file_name(tmp_path):
    with pytest.raises(MetadataError, match="must match the file name"):
        load_source_file(write(tmp_path, VALID, name="other.yaml"))


def test_drop_folder_objects_need_a_pattern(tmp_path):
    text = """
    source: shop
    connection: {type: drop_folder, folder: drops}
    objects:
      budget: {extract_mode: full, format: csv}
    """
    with pytest.raises(MetadataError, match="needs file_pattern"):
        load_source_file(write(tmp_path, text))
