"""recreate rebuilds beside the table and swaps by Delta commits: never a moment without a table."""

from datetime import date, datetime

import pytest
from deltalake import DeltaTable

import medallion_assets.engine.base.load as load_module
from medallion_assets.engine.base import load_partition, table_path

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def test_recreate_replaces_the_table_by_commits_and_cleans_its_staging(tmp_path, land, h):
    table = h.make_table(write_behaviour="scd1", recreate=True)
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9)), (2, "a", "Y", datetime(2026, 1, 1, 9))))
    load_partition(table, tmp_path, D1)
    first = DeltaTable(str(table_path(tmp_path, table))).version()
    land(D2, "delta", h.customers((1, "b", "X", datetime(2026, 1, 2, 9))))
    result = load_partition(table, tmp_path, D2)
    assert DeltaTable(str(table_path(tmp_path, table))).version() > first  # history kept, not restarted
    assert result.table == table.name and result.delta_version is not None
    rows = {(r["customer_id"], r["segment"]) for r in h.read_base(tmp_path)}
    assert rows == {(1, "b"), (2, "a")}
    assert not [p for p in (tmp_path / "base").rglob("*") if p.name.startswith(load_module.STAGING_PREFIX)]


def test_a_rebuild_that_dies_leaves_the_previous_table(tmp_path, land, h, monkeypatch):
    table = h.make_table(write_behaviour="scd1", recreate=True)
    land(D1, "full", h.customers((1, "a", "X", datetime(2026, 1, 1, 9))))
    load_partition(table, tmp_path, D1)
    before = (DeltaTable(str(table_path(tmp_path, table))).version(), sorted(map(str, h.read_base(tmp_path))))
    land(D2, "delta", h.customers((1, "b", "X", datetime(2026, 1, 2, 9))))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while the staging table is written")

    monkeypatch.setattr(load_module, "_replace_with", killed)
    with pytest.raises(KeyboardInterrupt):
        load_partition(table, tmp_path, D2)
    after = (DeltaTable(str(table_path(tmp_path, table))).version(), sorted(map(str, h.read_base(tmp_path))))
    assert after == before
    monkeypatch.undo()
    load_partition(table, tmp_path, D2)  # the next run clears the leftovers and finishes
    assert {(r["customer_id"], r["segment"]) for r in h.read_base(tmp_path)} == {(1, "b")}
