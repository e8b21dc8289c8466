"""The fast paths of the loader read and write exactly what the slow ones would."""

from datetime import datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from medallion_assets.engine.base.keyed import _key_ranges
from medallion_assets.engine.storage.scan import connect, register_delta


def _rows(con, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def test_parquet_view_equals_the_arrow_dataset_with_partitions_and_added_columns(tmp_path):
    path = str(tmp_path / "t")
    first = pa.table({"k": [1, 2, 3], "kind": ["a", "b", "a"], "at_ts": pa.array([datetime(2026, 1, 1)] * 3, pa.timestamp("us"))})
    write_deltalake(path, first, partition_by=["kind"])
    later = pa.table({"k": [4], "kind": ["c"], "at_ts": pa.array([datetime(2026, 1, 2)], pa.timestamp("us")), "extra": ["x"]})
    write_deltalake(path, later, mode="append", schema_mode="merge")
    dt = DeltaTable(path)
    con = connect()
    try:
        register_delta(con, "v", dt, split=("kind", ("a", "b", "c", "d")))
        con.register("ds", dt.to_pyarrow_dataset())
        cols = "k, kind, at_ts, extra"
        assert _rows(con, f"SELECT {cols} FROM v") == _rows(con, f"SELECT {cols} FROM ds")
        assert len(_rows(con, "SELECT * FROM v")) == 4
        assert _rows(con, "SELECT k FROM v__a") == [(1,), (3,)]
        assert _rows(con, "SELECT k, extra FROM v__c") == [(4, "x")]
        assert _rows(con, "SELECT k FROM v__d") == []  # no files: empty, but typed like the table
    finally:
        con.close()


def test_key_ranges_cover_every_source_key_and_skip_the_gaps():
    keys = [1, 2, 3, 50, 51, 1000, 5000, 5001, 5002]
    source = pa.table({"id": pa.array(keys, pa.int64()), "other": pa.array(["x"] * len(keys))})
    con = connect()
    try:
        con.register("src", source)
        (condition,) = _key_ranges(con, "src", ["id", "other"], alias=None)  # string keys get no range
        con.register("all_ids", pa.table({"id": pa.array(range(0, 6000), pa.int64())}))
        assert _rows(con, f"SELECT count(*) FROM src WHERE NOT ({condition})") == [(0,)]
        covered = con.execute(f"SELECT count(*) FROM all_ids WHERE {condition}").fetchall()[0][0]
        assert covered == len(keys)  # few enough gaps: every one is cut out
    finally:
        con.close()


def test_recreated_table_is_not_read_through_a_stale_file_listing(tmp_path, land, h):
    """A recreate rebuilds the table from version 0 in the same process: the cached listing of
    the old table's files must not be used for the new one."""
    from datetime import date

    from medallion_assets.engine.base import load_partition

    table = h.make_table(write_behaviour="scd1", recreate=True)
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    land(d1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9)), (2, "a", "Y", datetime(2026, 1, 1, 9))))
    load_partition(table, tmp_path, d1)
    land(d2, "delta", h.customers((1, "b", "X", datetime(2026, 1, 2, 9)), (3, "c", "Z", datetime(2026, 1, 2, 9))))
    load_partition(table, tmp_path, d2)
    rows = {(r["customer_id"], r["segment"], r["lh_is_deleted"]) for r in h.read_base(tmp_path)}
    assert rows == {(1, "b", False), (2, "a", False), (3, "c", False)}


@pytest.mark.parametrize(
    ("values", "kind", "repeated"),
    [
        ([3, 1, 2], pa.int64(), []),  # dense, unsorted: counted
        ([3, 1, 3, 1, 2, 1], pa.int64(), [1, 3]),
        ([127, -128, 0, 5], pa.int8(), []),  # the offset from the minimum would overflow int8
        ([127, -128, 0, 127, -128], pa.int8(), [-128, 127]),
        ([2**62, -(2**62), 7], pa.int64(), []),  # sparse: sorted
        ([2**62, -(2**62), 2**62, 2**62], pa.int64(), [2**62]),
        ([2**63 + 5, 1, 2**63 + 5], pa.uint64(), [2**63 + 5]),
        ([1, 2, 3], pa.int64(), []),  # sorted: one pass
    ],
)
def test_repeated_keys_on_dense_sparse_and_small_integer_keys(values, kind, repeated):
    from medallion_assets.engine.base.reader import repeated_keys

    table = pa.table({"k": pa.array(values, kind)})
    found = repeated_keys(table, ["k"])
    assert found.type == kind and sorted(found.to_pylist()) == repeated
    assert repeated_keys(pa.table({"k": pa.array(["a", "a"])}), ["k"]) is None  # not an integer key: not cheaply known


@pytest.mark.parametrize("key_type", [pa.int64(), pa.string()])
def test_ambiguous_keys_set_aside_in_order(h, key_type):
    """Only rows of one key and modify date that differ go to quarantine; exact duplicates and
    rows a modify date orders stay, in their order. Integer keys check the repeated keys' rows
    only (see repeated_keys), other keys every row: the outcome is the same."""
    from medallion_assets.engine.base.reader import prepare

    n = 2000
    ids = list(range(n))
    day = datetime(2026, 1, 1)
    rows = [(i, f"s{i}", day) for i in ids]
    rows[10] = (7, "s7", day)  # an exact duplicate of key 7
    rows[20] = (9, "other", day)  # key 9 twice, same modify date, different content: ambiguous
    rows[30] = (11, "later", datetime(2026, 1, 2))  # key 11 twice, ordered by its modify date
    raw = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows]).cast(key_type),
            "segment": [r[1] for r in rows],
            "modified_at": pa.array([r[2] for r in rows], pa.timestamp("us")),
        }
    )
    good, aside = prepare(raw, h.make_table(), "full", "test")
    expected = [r for r in rows if r[0] != 9]
    assert good.column("segment").to_pylist() == [r[1] for r in expected]
    assert sorted(aside.column("segment").to_pylist()) == ["other", "s9"]
    assert set(aside.column("lh_quarantine_rules").to_pylist()) == {"ambiguous_business_key"}
