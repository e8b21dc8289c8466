"""Dimensions: surrogate-key stability, unknown member, SCD1/SCD2, full loads, recreate, bad keys."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.curated import CuratedError, load_curated_model, load_dimension, merge_scd1, merge_scd2

T1, T2, T3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)


def _model(folder: Path, yaml: str, sql: dict[str, str]):
    folder.mkdir(exist_ok=True)
    (folder / "model.yaml").write_text(yaml)
    for name, text in sql.items():
        (folder / name).write_text(text)
    return load_curated_model(folder)


def _dim(data_dir: Path, table: str) -> pa.Table:
    return DeltaTable(str(data_dir / "curated" / table)).to_pyarrow_table()


def _ids(table: pa.Table, id_col: str, key_col: str) -> dict:
    return dict(zip(table.column(key_col).to_pylist(), table.column(id_col).to_pylist(), strict=True))


def test_scd1_ids_are_stable_and_new_keys_go_above_the_maximum() -> None:
    first = pa.table({"product_key": [30, 10, 20], "name": ["c", "a", "b"]})
    out1 = merge_scd1(None, first, id_column="product_id", business_key="product_key", full_load=False, now=T1)
    assert _ids(out1.table, "product_id", "product_key") == {-1: -1, 10: 1, 20: 2, 30: 3}
    second = pa.table({"product_key": [5, 20, 30, 10], "name": ["new", "b", "C", "a"]})
    out2 = merge_scd1(out1.table, second, id_column="product_id", business_key="product_key", full_load=False, now=T2)
    assert _ids(out2.table, "product_id", "product_key") == {-1: -1, 10: 1, 20: 2, 30: 3, 5: 4}
    assert (out2.inserted, out2.updated, out2.deleted) == (1, 1, 0)
    row30 = out2.table.filter(pa.compute.equal(out2.table.column("product_key"), 30)).to_pylist()[0]
    assert row30["name"] == "C" and row30["lh_modified_date"] == T2 and row30["lh_created_date"] == T1


def test_unknown_member_has_type_defaults_and_is_never_soft_deleted() -> None:
    incoming = pa.table({
        "product_key": pa.array([1], pa.int32()), "name": ["a"], "price": pa.array([1.5]),
        "launched": pa.array([datetime(2020, 1, 1).date()], pa.date32()), "active": [True],
    })
    out = merge_scd1(None, incoming, id_column="product_id", business_key="product_key", full_load=True, now=T1,
                     unknown_overrides={"name": "n/a"})
    unknown = out.table.filter(pa.compute.equal(out.table.column("product_id"), -1)).to_pylist()[0]
    assert unknown["product_key"] == -1 and unknown["name"] == "n/a" and unknown["price"] == 0.0
    assert unknown["launched"] == datetime(1900, 1, 1).date() and unknown["active"] is False
    empty = incoming.slice(0, 0)
    out2 = merge_scd1(out.table, empty, id_column="product_id", business_key="product_key", full_load=True, now=T2)
    rows = {r["product_id"]: r for r in out2.table.to_pylist()}
    assert rows[-1]["lh_is_deleted"] is False and rows[1]["lh_is_deleted"] is True and out2.deleted == 1


def test_scd1_full_load_soft_deletes_and_undeletes_keeping_the_id() -> None:
    a = pa.table({"k_key": [1, 2], "v": ["x", "y"]})
    kw = dict(id_column="k_id", business_key="k_key", full_load=True)
    t1 = merge_scd1(None, a, now=T1, **kw).table
    t2 = merge_scd1(t1, a.slice(0, 1), now=T2, **kw).table
    assert {r["k_key"]: r["lh_is_deleted"] for r in t2.to_pylist()} == {-1: False, 1: False, 2: True}
    t3 = merge_scd1(t2, a, now=T3, **kw)
    assert {r["k_key"]: (r["k_id"], r["lh_is_deleted"]) for r in t3.table.to_pylist()} == {
        -1: (-1, False), 1: (1, False), 2: (2, False)}
    assert t3.updated == 1


def test_scd2_versions_get_their_own_ids_and_closed_intervals() -> None:
    kw = dict(id_column="customer_id", business_key="customer_key", full_load=True, valid_from_column="modified_at")
    v1 = pa.table({"customer_key": [1, 2], "segment": ["retail", "retail"], "modified_at": [T1, T1]})
    t1 = merge_scd2(None, v1, now=T1, **kw).table
    v2 = pa.table({"customer_key": [1, 2], "segment": ["corporate", "retail"], "modified_at": [T2, T1]})
    out = merge_scd2(t1, v2, now=T3, **kw)
    rows = sorted(out.table.to_pylist(), key=lambda r: r["customer_id"])
    assert [(r["customer_id"], r["customer_key"], r["segment"], r["lh_is_current"]) for r in rows] == [
        (-1, -1, "Unknown", True), (1, 1, "retail", False), (2, 2, "retail", True), (3, 1, "corporate", True)]
    assert rows[1]["lh_valid_from"] == datetime(1900, 1, 1)  # first version open to older facts
    assert rows[1]["lh_valid_to"] == datetime(2026, 1, 1, 23, 59, 59, 999999)
    assert rows[3]["lh_valid_from"] == T2 and rows[3]["lh_valid_to"] == datetime(9999, 12, 31)
    assert (out.inserted, out.updated, out.deleted) == (0, 1, 0)
    again = merge_scd2(out.table, v2, now=T3, **kw)
    assert not again.changed and again.table.equals(out.table)
    gone = merge_scd2(out.table, v2.slice(1, 1), now=datetime(2026, 1, 5), **kw)
    current_1 = [r for r in gone.table.to_pylist() if r["customer_key"] == 1 and r["lh_is_current"]]
    assert len(current_1) == 1 and current_1[0]["lh_is_deleted"] and current_1[0]["customer_id"] == 4


def test_scd2_by_load_time_when_no_valid_from_column() -> None:
    kw = dict(id_column="c_id", business_key="c_key", full_load=False, first_valid_from=None)
    t1 = merge_scd2(None, pa.table({"c_key": [1], "v": ["a"]}), now=T1, **kw).table
    t2 = merge_scd2(t1, pa.table({"c_key": [1], "v": ["b"]}), now=T2, **kw).table
    versions = sorted((r["lh_valid_from"], r["v"]) for r in t2.to_pylist() if r["c_key"] == 1)
    assert versions == [(T1, "a"), (T2, "b")]


def test_load_dimension_from_sql_keeps_ids_across_reloads_and_recreate_resets(tmp_path: Path, base_kit) -> None:
    write_base, customer, CUSTOMER_SCHEMA = base_kit.write_base, base_kit.customer, base_kit.CUSTOMER_SCHEMA
    write_base(tmp_path, "erp_customer", [customer(7, "A", "retail", T1), customer(3, "B", "retail", T1)],
               CUSTOMER_SCHEMA)
    sql = {"dim_customer.sql": "SELECT customer_id AS customer_key, customer_name, segment, modified_at "
                               "FROM base.erp_customer WHERE lh_is_current"}
    model = _model(tmp_path / "m", "dimensions:\n  customer:\n    write_pattern: scd1\n", sql)
    meta = model.dimensions["customer"]
    r1 = load_dimension(meta, tmp_path, now=T1)
    assert _ids(_dim(tmp_path, "dim_customer"), "customer_id", "customer_key") == {-1: -1, 3: 1, 7: 2}
    write_base(tmp_path, "erp_customer", [customer(1, "C", "retail", T2), customer(7, "A", "retail", T1),
                                          customer(3, "B", "retail", T1)], CUSTOMER_SCHEMA)
    r2 = load_dimension(meta, tmp_path, now=T2)
    assert _ids(_dim(tmp_path, "dim_customer"), "customer_id", "customer_key") == {-1: -1, 3: 1, 7: 2, 1: 3}
    assert (r1.inserted, r2.inserted, r2.delta_version) == (2, 1, 1)
    recreate = _model(tmp_path / "m2", "dimensions:\n  customer:\n    recreate: true\n", sql).dimensions["customer"]
    load_dimension(recreate, tmp_path, now=T3)
    assert _ids(_dim(tmp_path, "dim_customer"), "customer_id", "customer_key") == {-1: -1, 1: 1, 3: 2, 7: 3}


def test_duplicate_business_keys_fail_and_leave_the_table_untouched(tmp_path: Path, base_kit) -> None:
    write_base, customer, CUSTOMER_SCHEMA = base_kit.write_base, base_kit.customer, base_kit.CUSTOMER_SCHEMA
    write_base(tmp_path, "erp_customer", [customer(1, "A", "retail", T1)], CUSTOMER_SCHEMA)
    ok = _model(tmp_path / "ok", "dimensions:\n  customer: {}\n",
                {"dim_customer.sql": "SELECT customer_id AS customer_key, segment FROM base.erp_customer"})
    load_dimension(ok.dimensions["customer"], tmp_path, now=T1)
    before = _dim(tmp_path, "dim_customer")
    bad = _model(tmp_path / "bad", "dimensions:\n  customer: {}\n",
                 {"dim_customer.sql": "SELECT 42 AS customer_key, segment FROM base.erp_customer, range(2)"})
    with pytest.raises(CuratedError, match=r"dim_customer\.sql.*duplicate business key customer_key = 42"):
        load_dimension(bad.dimensions["customer"], tmp_path, now=T2)
    assert _dim(tmp_path, "dim_customer").equals(before)
    assert DeltaTable(str(tmp_path / "curated" / "dim_customer")).version() == 0


def test_sql_reading_a_missing_table_names_the_file(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", "dimensions:\n  thing: {}\n",
                   {"dim_thing.sql": "SELECT 1 AS thing_key FROM base.erp_nothing"})
    with pytest.raises(CuratedError, match=r"dim_thing\.sql: reads base\.erp_nothing, which does not exist"):
        load_dimension(model.dimensions["thing"], tmp_path)
