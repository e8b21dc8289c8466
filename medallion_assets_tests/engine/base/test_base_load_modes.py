"""Append, overwrite, schema evolution, quarantine, translations and transformations."""

from datetime import date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base import SchemaError, load_partition
from medallion_assets.engine.base.load import quarantine_path

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def rows(path) -> pa.Table:
    return DeltaTable(str(path)).to_pyarrow_table()


def test_append_rerun_replaces_the_partition_never_doubles(tmp_path, land, h):
    land(D1, "delta", h.customers((1, "a", "X", datetime(2026, 1, 1, 9)), (1, "a", "X", datetime(2026, 1, 1, 9))))
    land(D2, "delta", h.customers((2, "b", "Y", datetime(2026, 1, 2, 9))))
    table = h.make_table(write_behaviour="append", business_keys=[])
    load_partition(table, tmp_path, D2)
    load_partition(table, tmp_path, D1)
    first = sorted(rows(tmp_path / "base/erp_customer").column("customer_id").to_pylist())
    again = load_partition(table, tmp_path, D1)
    assert first == [1, 2]  # the exact duplicate was dropped
    assert again.replaced == 1 and again.inserted == 1
    assert sorted(rows(tmp_path / "base/erp_customer").column("customer_id").to_pylist()) == [1, 2]


def test_overwrite_keeps_the_newest_extract_whatever_the_order(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9))))
    land(D2, "full", h.customers((2, "b", "Y", datetime(2026, 1, 2, 9))))
    table = h.make_table(write_behaviour="overwrite", business_keys=[], read_behaviour="full")
    load_partition(table, tmp_path, D2)
    stale = load_partition(table, tmp_path, D1)
    assert stale.status == "stale"
    assert rows(tmp_path / "base/erp_customer").column("customer_id").to_pylist() == [2]


def test_new_column_added_vanished_column_kept(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9))))
    wider = h.customers((2, "b", "Y", datetime(2026, 1, 2, 9))).append_column("email", pa.array(["e@x"]))
    land(D2, "delta", wider.drop_columns(["city"]))
    table = h.make_table(write_behaviour="scd1")
    load_partition(table, tmp_path, D1)
    load_partition(table, tmp_path, D2)
    got = {r["customer_id"]: (r["city"], r["email"]) for r in h.read_base(tmp_path)}
    assert got == {1: ("X", None), 2: (None, "e@x")}


def test_incompatible_type_change_is_an_error_and_the_table_is_untouched(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9))), fmt="parquet")
    bad = pa.table({"customer_id": pa.array([2], pa.int64()), "segment": pa.array([1.5]), "city": ["Y"],
                    "modified_at": pa.array([datetime(2026, 1, 2, 9)], pa.timestamp("us"))})
    land(D2, "delta", bad, fmt="parquet")
    table = h.make_table(write_behaviour="scd2", format="parquet", read_options={})
    load_partition(table, tmp_path, D1)
    before = DeltaTable(str(tmp_path / "base/erp_customer")).version()
    state_before = DeltaTable(str(tmp_path / "base/_state/erp_customer")).version()
    with pytest.raises(SchemaError, match=r"customer_delta_20260102T220000\.parquet.*'segment'"):
        load_partition(table, tmp_path, D2)
    assert DeltaTable(str(tmp_path / "base/erp_customer")).version() == before
    assert DeltaTable(str(tmp_path / "base/_state/erp_customer")).version() == state_before


def test_quality_rules_quarantine_rows_and_translations_normalise_names(tmp_path, land):
    from medallion_assets.engine.base.model import BaseTable

    raw = pa.table(
        {
            "CustomerID": pa.array([1, 2, 3], pa.int64()),
            "Seg": ["a", "zz", None],
            "Modified At": pa.array([datetime(2026, 1, 1)] * 3, pa.timestamp("us")),
        }
    )
    land(D1, "full", raw)
    table = BaseTable.model_validate(
        {
            "object": "customer",
            "source": "erp",
            "name": "erp_customer",
            "landing": [{"source": "erp", "object": "customer"}],
            "format": "csv",
            "write_behaviour": "scd1",
            "business_keys": ["customer_id"],
            "modify_date_column": "modified_at",
            "translations": {"Seg": "segment"},
            "quality_rules": [
                {"name": "segment_known", "column": "segment", "not_null": True, "allowed_values": ["a", "b"]}
            ],
        }
    )
    result = load_partition(table, tmp_path, D1)
    assert result.quarantined == 2 and result.inserted == 1
    assert rows(tmp_path / "base/erp_customer").column_names[:3] == ["customer_id", "segment", "modified_at"]
    kept = rows(quarantine_path(tmp_path, table)).sort_by("customer_id").to_pylist()
    assert [(r["customer_id"], r["lh_quarantine_rules"], r["lh_is_quarantined"]) for r in kept] == [
        (2, "segment_known", True),
        (3, "segment_known", True),
    ]
    load_partition(table, tmp_path, D1)  # a rerun does not double the quarantine
    assert rows(quarantine_path(tmp_path, table)).num_rows == 2


def upper_segment(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.set_column(table.column_names.index("segment"), "segment", pc.utf8_upper(table.column("segment")))


def test_custom_transformation_and_missing_key_error(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9))))
    table = h.make_table(write_behaviour="scd1", transformation=f"{__name__}.upper_segment")
    load_partition(table, tmp_path, D1)
    assert h.read_base(tmp_path)[0]["segment"] == "A"
    land(D2, "delta", h.customers((2, "b", "Y", datetime(2026, 1, 2, 9))).drop_columns(["customer_id"]))
    with pytest.raises(
        ValueError, match=r"customer_delta_20260102T220000\.csv.*business key column 'customer_id' is missing"
    ):
        load_partition(table, tmp_path, D2)
