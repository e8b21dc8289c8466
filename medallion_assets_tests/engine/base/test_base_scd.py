"""scd1 and scd2 loads against hand-computed tables (real landing files, real Delta tables)."""

from datetime import date, datetime

import pyarrow as pa
from deltalake import DeltaTable

from medallion_assets.engine.base import load_partition
from medallion_assets.engine.base.invariants import scd2_violations

D1, D2, D3, D4, D5 = (date(2026, 1, d) for d in range(1, 6))
OPEN = datetime(9999, 12, 31)
F1 = "landing/erp/customer/full/2026/01/01/customer_full_20260101T220000.csv"
DL2 = "landing/erp/customer/delta/2026/01/02/customer_delta_20260102T220000.csv"
K2 = "landing/erp/customer/keys/2026/01/02/customer_keys_20260102T220000.csv"
DL3 = "landing/erp/customer/delta/2026/01/03/customer_delta_20260103T220000.csv"
F4 = "landing/erp/customer/full/2026/01/04/customer_full_20260104T220000.csv"


def ts(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute)


def us_before(value: datetime) -> datetime:
    return value.replace(microsecond=0) - (datetime(2000, 1, 1, 0, 0, 0, 1) - datetime(2000, 1, 1))


def land_story(land, h) -> None:
    land(D1, "full", h.customers((1, "a", "X", ts(1, 9)), (2, "a", "Y", ts(1, 9)), (3, "a", "Z", ts(1, 9))))
    # an update, its exact duplicate, a late-arriving insert and an unchanged re-extract
    land(D2, "delta", h.customers((1, "b", "X", ts(2, 10)), (1, "b", "X", ts(2, 10)), (4, "a", "W", ts(1, 12)), (2, "a", "Y", ts(1, 9))))
    land(D2, "keys", h.keys(1, 2, 4))  # 3 was hard-deleted
    # 3 comes back with its old modify date; 1 has two versions in one batch, one of them late
    land(D3, "delta", h.customers((3, "a", "Z", ts(1, 9)), (1, "c", "X", ts(3, 8)), (1, "b", "X", ts(2, 15))))
    land(D3, "keys", h.keys(1, 2, 3, 4))
    land(D4, "full", h.customers((1, "c", "X", ts(3, 8)), (2, "a", "Y", ts(1, 9)), (3, "a", "Z", ts(1, 9))))  # 4 gone


def row(cid, seg, city, mod, src, deleted, start, end):
    return {
        "customer_id": cid, "segment": seg, "city": city, "modified_at": mod, "lh_source_file": src,
        "lh_is_deleted": deleted, "lh_valid_from": start, "lh_valid_to": end, "lh_is_current": end == OPEN,
    }


EXPECTED_SCD2 = [
    row(1, "a", "X", ts(1, 9), F1, False, ts(1, 9), us_before(ts(2, 10))),
    # the late 15:00 row changes no tracked column: it updates this version in place
    row(1, "b", "X", ts(2, 15), DL3, False, ts(2, 10), us_before(ts(3, 8))),
    row(1, "c", "X", ts(3, 8), DL3, False, ts(3, 8), OPEN),
    row(2, "a", "Y", ts(1, 9), F1, False, ts(1, 9), OPEN),
    row(3, "a", "Z", ts(1, 9), F1, False, ts(1, 9), us_before(ts(2, 22))),
    row(3, "a", "Z", ts(1, 9), K2, True, ts(2, 22), us_before(ts(3, 22))),
    # back with a modify date not after the deletion: valid from the extract's timestamp
    row(3, "a", "Z", ts(1, 9), DL3, False, ts(3, 22), OPEN),
    row(4, "a", "W", ts(1, 12), DL2, False, ts(1, 12), us_before(ts(4, 22))),
    row(4, "a", "W", ts(1, 12), F4, True, ts(4, 22), OPEN),
]


def test_scd2_story_matches_hand_computed_history(tmp_path, land, h):
    land_story(land, h)
    table = h.make_table(history_columns=["segment", "city"])
    results = [load_partition(table, tmp_path, day) for day in (D1, D2, D3, D4)]
    assert h.read_base(tmp_path) == EXPECTED_SCD2
    assert [r.soft_deleted for r in results] == [0, 1, 0, 1]
    assert results[0].inserted == 3 and results[1].rows_read == 4
    assert not any(scd2_violations(DeltaTable(str(tmp_path / "base/erp_customer")).to_pyarrow_dataset(), ["customer_id"]).values())


def test_scd2_rerun_and_noop_reextract_change_nothing(tmp_path, land, h):
    land_story(land, h)
    table = h.make_table(history_columns=["segment", "city"])
    for day in (D1, D2, D3, D4):
        load_partition(table, tmp_path, day)
    version = DeltaTable(str(tmp_path / "base/erp_customer")).version()
    again = load_partition(table, tmp_path, D2)
    assert again.status == "up_to_date" and again.inserted == again.updated == 0
    land(D5, "delta", h.customers((1, "c", "X", ts(3, 8)), (2, "a", "Y", ts(1, 9))))
    noop = load_partition(table, tmp_path, D5)
    assert (noop.inserted, noop.updated, noop.soft_deleted, noop.unchanged) == (0, 0, 0, 2)
    assert DeltaTable(str(tmp_path / "base/erp_customer")).version() == version
    assert h.read_base(tmp_path) == EXPECTED_SCD2


def test_scd2_tracks_every_attribute_by_default(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", ts(1, 9))))
    land(D2, "delta", h.customers((1, "a", "Q", ts(2, 9)), (1, "a", "Q", ts(2, 11))))
    table = h.make_table()
    load_partition(table, tmp_path, D1)
    load_partition(table, tmp_path, D2)
    rows = h.read_base(tmp_path)
    # the city change opens a version; a modify-date-only change updates it in place
    assert [(r["city"], r["modified_at"], r["lh_valid_from"]) for r in rows] == [("X", ts(1, 9), ts(1, 9)), ("Q", ts(2, 11), ts(2, 9))]


def test_scd1_story_and_modified_date_moves_only_on_change(tmp_path, land, h):
    land_story(land, h)
    table = h.make_table(write_behaviour="scd1")
    stamps = [datetime(2026, 2, d) for d in (1, 2, 3, 4)]
    for day, now in zip((D1, D2, D3, D4), stamps, strict=True):
        load_partition(table, tmp_path, day, now=now)
    rows = {r["customer_id"]: r for r in h.read_base(tmp_path, system=True)}
    assert set(rows[1]) >= {"lh_created_date", "lh_modified_date", "lh_is_deleted", "lh_source_file"}
    assert "lh_valid_from" not in rows[1]
    got = {k: (r["segment"], r["modified_at"], r["lh_is_deleted"], r["lh_source_file"]) for k, r in rows.items()}
    assert got == {
        1: ("c", ts(3, 8), False, DL3),
        2: ("a", ts(1, 9), False, F1),
        3: ("a", ts(1, 9), False, DL3),  # deleted on day 2, back on day 3
        4: ("a", ts(1, 12), True, F4),  # missing from the full extract: soft-deleted, kept
    }
    assert (rows[2]["lh_created_date"], rows[2]["lh_modified_date"]) == (stamps[0], stamps[0])
    assert (rows[1]["lh_created_date"], rows[1]["lh_modified_date"]) == (stamps[0], stamps[2])
    assert rows[4]["lh_created_date"] == stamps[1] and rows[4]["lh_modified_date"] == stamps[3]


def test_scd1_full_after_several_deltas_soft_deletes_and_latest_wins(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", ts(1, 9)), (2, "a", "Y", ts(1, 9))))
    land(D2, "delta", h.customers((1, "b", "X", ts(2, 9)), (3, "a", "N", ts(2, 9))))
    land(D3, "delta", h.customers((1, "c", "X", ts(3, 9)), (1, "b", "X", ts(2, 9))))
    land(D4, "full", h.customers((1, "c", "X", ts(3, 9)), (3, "a", "N", ts(2, 9))))
    table = h.make_table(write_behaviour="scd1")
    results = [load_partition(table, tmp_path, day) for day in (D1, D2, D3, D4)]
    got = {r["customer_id"]: (r["segment"], r["lh_is_deleted"]) for r in h.read_base(tmp_path)}
    assert got == {1: ("c", False), 2: ("a", True), 3: ("a", False)}
    assert [(r.inserted, r.updated, r.soft_deleted) for r in results] == [(2, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)]


def test_delete_events_and_undelete(tmp_path, land, h):
    schema = pa.schema([("customer_id", pa.int64()), ("segment", pa.string()), ("op", pa.string()), ("modified_at", pa.timestamp("us"))])

    def ops(*rows):
        return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)

    land(D1, "full", ops((1, "a", "I", ts(1, 9)), (2, "a", "I", ts(1, 9))))
    land(D2, "delta", ops((2, "a", "D", ts(2, 10))))
    land(D3, "delta", ops((2, "b", "I", ts(3, 10))))
    table = h.make_table(delete_condition={"column": "op", "equals": "D"}, columns=["customer_id", "segment", "modified_at"])
    for day in (D1, D2, D3):
        load_partition(table, tmp_path, day)
    rows = [(r["customer_id"], r["segment"], r["lh_is_deleted"], r["lh_valid_from"], r["lh_is_current"]) for r in h.read_base(tmp_path)]
    assert rows == [
        (1, "a", False, ts(1, 9), True),
        (2, "a", False, ts(1, 9), False),
        (2, "a", True, ts(2, 10), False),  # the event's modify date
        (2, "b", False, ts(3, 10), True),
    ]
    assert "op" not in h.read_base(tmp_path)[0]
