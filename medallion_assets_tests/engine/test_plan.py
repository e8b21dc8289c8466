"""The plan against real Delta tables: curated SQL bound over the stored schemas without running,
columns added, removed and retyped, a base table's write behaviour and keys against its last load."""

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.curated.model import DimensionMeta, DimensionSpec
from medallion_assets.engine.curated.sql import TableRef
from medallion_assets.engine.metadata import MetadataError
from medallion_assets.engine.plan import bind_sql, plan_base, plan_curated, stored_schema


@pytest.fixture
def lake(tmp_path) -> Path:
    write_deltalake(str(tmp_path / "base" / "shop_item"), pa.table({
        "item_id": pa.array([1], pa.int64()), "name": ["Tea"], "price": pa.array([2.5], pa.float64()),
        "lh_is_current": [True],
    }))
    write_deltalake(str(tmp_path / "curated" / "dim_item"), pa.table({
        "item_id": pa.array([1], pa.int64()), "item_key": pa.array([1], pa.int64()), "item_name": ["Tea"],
        "price": pa.array([2.5], pa.float64()), "lh_is_current": [True],
    }))
    return tmp_path


def dimension(sql: str, tmp_path: Path) -> DimensionMeta:
    spec = DimensionSpec.model_validate({"write_pattern": "scd1"})
    return DimensionMeta(name="item", spec=spec, sql=sql, sql_path=tmp_path / "dim_item.sql",
                         reads=(TableRef("base", "shop_item"),))


def test_binding_gives_the_columns_and_types_without_reading_a_row(lake):
    schemas = {("base", "shop_item"): stored_schema(lake, "base", "shop_item")}
    bound = bind_sql("SELECT item_id AS item_key, price * 2 AS doubled, * EXCLUDE (lh_is_current) FROM base.shop_item",
                     file=lake / "x.sql", schemas=schemas)
    assert bound == {"item_key": "BIGINT", "doubled": "DOUBLE", "item_id": "BIGINT", "name": "VARCHAR", "price": "DOUBLE"}


def test_a_column_the_base_table_lacks_names_the_file_and_the_column(lake):
    with pytest.raises(MetadataError, match=r"dim_item\.sql: Binder Error: Referenced column \"prise\" not found"):
        plan_curated(dimension("SELECT item_id AS item_key, prise FROM base.shop_item", lake), lake)


def test_unchanged_sql_plans_nothing(lake):
    meta = dimension("SELECT item_id AS item_key, name AS item_name, price FROM base.shop_item", lake)
    assert plan_curated(meta, lake).changes == ()


def test_added_removed_and_retyped_columns(lake):
    meta = dimension("SELECT item_id AS item_key, CAST(price AS DECIMAL(10,2)) AS price, upper(name) AS shout "
                     "FROM base.shop_item", lake)
    plan = plan_curated(meta, lake)
    assert {(c.what, c.detail, c.breaking) for c in plan.changes} == {
        ("column added", "shout VARCHAR", False),
        ("column removed", "item_name VARCHAR", True),
        ("column retyped", "price DOUBLE -> DECIMAL(10,2)", True),
    }
    assert plan.breaking and not plan.partitioned


def test_a_table_it_reads_that_is_not_stored_is_a_note_not_a_change(lake):
    meta = DimensionMeta(name="x", spec=DimensionSpec.model_validate({"write_pattern": "scd1"}), sql="SELECT 1 AS x_key",
                         sql_path=lake / "dim_x.sql", reads=(TableRef("base", "ghost"),))
    plan = plan_curated(meta, lake)
    assert plan.changes == () and plan.notes == ("cannot bind yet: base.ghost not stored",)


def test_a_base_table_against_its_last_load(lake):
    table = BaseTable(object="item", source="shop", name="shop_item", landing=[{"source": "shop", "object": "item"}],
                      format="csv", write_behaviour="scd2", business_keys=["item_id"])
    same = plan_base(table, lake, last_load={"write_behaviour": "scd2", "business_keys": "item_id"})
    assert same.changes == ()
    changed = plan_base(table, lake, last_load={"write_behaviour": "scd1", "business_keys": "item_no"})
    assert [(c.what, c.detail) for c in changed.changes] == [("write_behaviour", "scd1 -> scd2"), ("business_keys", "item_no -> item_id")]
    assert changed.breaking
