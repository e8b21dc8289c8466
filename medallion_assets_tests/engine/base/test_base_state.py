"""The hidden state grows with versions, not with extracts; every landing file of a partition
contributes its versions; unchanged rows stay untouched; loads in any order match the reference
fold over every observation (real landing files and Delta tables where it matters)."""

import random
from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets.engine.base import load_partition
from medallion_assets.engine.base.history import build_history, reference_history

D1, D2, D3 = (date(2026, 1, d) for d in range(1, 4))


def ts(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour)


def state_rows(root, name: str = "erp_customer") -> int:
    return DeltaTable(str(root / "base" / "_state" / name)).to_pyarrow_dataset().count_rows()


def test_repeated_full_extracts_store_nothing_per_key(tmp_path, land, h):
    """Ten daily full extracts of 200 keys, one key changed per day: the state grows by a few rows
    per extract (the change and the file), not by one row per key."""
    rows = {k: (k, "a", "X", ts(1, 9)) for k in range(200)}
    table = h.make_table(format="parquet", read_options={})
    sizes = []
    for index in range(10):
        day = D1 + timedelta(days=index)
        if index:
            rows[index] = (index, "b", "Y", datetime(day.year, day.month, day.day, 9))
        land(day, "full", h.customers(*rows.values()), fmt="parquet")
        load_partition(table, tmp_path, day)
        sizes.append(state_rows(tmp_path))
    growth = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
    assert sizes[0] == 200 * 2 + 1  # a version and a mark per key, one extract row
    assert growth == [3] * 9  # the changed key's version and mark, and the extract row
    history = h.read_base(tmp_path)
    assert len(history) == 200 + 9


def test_delta_before_a_later_full_extract_of_the_same_day_keeps_its_version(tmp_path, land, h):
    land(D1, "full", h.customers((1, "a", "X", ts(1, 0)), (2, "a", "Y", ts(1, 0))), hour=0)
    land(D2, "delta", h.customers((1, "b", "X", ts(2, 1))), hour=1)
    land(D2, "full", h.customers((1, "c", "X", ts(2, 9)), (2, "a", "Y", ts(1, 0))), hour=9)
    scd2 = h.make_table()
    load_partition(scd2, tmp_path, D1)
    result = load_partition(scd2, tmp_path, D2)
    assert len(result.files) == 2 and not result.notes
    key1 = [(r["segment"], r["lh_valid_from"], r["lh_is_current"]) for r in h.read_base(tmp_path) if r["customer_id"] == 1]
    assert key1 == [("a", ts(1, 0), False), ("b", ts(2, 1), False), ("c", ts(2, 9), True)]
    # scd1 keeps the newest row as before and still skips the superseded delta
    scd1 = h.make_table(write_behaviour="scd1", name="erp_customer_scd1")
    load_partition(scd1, tmp_path, D1)
    result = load_partition(scd1, tmp_path, D2)
    assert len(result.files) == 1 and result.notes
    assert {r["customer_id"]: r["segment"] for r in h.read_base(tmp_path, "erp_customer_scd1")} == {1: "c", 2: "a"}


@pytest.mark.parametrize("behaviour", ["scd1", "scd2"])
def test_identical_full_extract_without_modify_date_changes_nothing(tmp_path, land, h, behaviour):
    table = h.make_table(write_behaviour=behaviour, modify_date_column=None)
    extract = h.customers((1, "a", "X", ts(1, 9)), (2, "b", "Y", ts(1, 9)))
    land(D1, "full", extract)
    land(D2, "full", extract)
    load_partition(table, tmp_path, D1, now=datetime(2026, 2, 1))
    before = h.read_base(tmp_path, system=True)
    version = DeltaTable(str(tmp_path / "base/erp_customer")).version()
    again = load_partition(table, tmp_path, D2, now=datetime(2026, 2, 2))
    assert (again.inserted, again.updated, again.soft_deleted, again.unchanged) == (0, 0, 0, 2)
    assert DeltaTable(str(tmp_path / "base/erp_customer")).version() == version
    assert h.read_base(tmp_path, system=True) == before
    assert {r["lh_source_file"].rsplit("_", 1)[-1] for r in before} == {"20260101T220000.csv"}
    # a real change still moves lh_modified_date and lh_source_file of that key only
    land(D3, "full", h.customers((1, "a", "Z", ts(1, 9)), (2, "b", "Y", ts(1, 9))))
    changed = load_partition(table, tmp_path, D3, now=datetime(2026, 2, 3))
    assert changed.updated == 1 and changed.unchanged == 1
    current = {r["customer_id"]: r for r in h.read_base(tmp_path, system=True) if r.get("lh_is_current", True)}
    assert current[2]["lh_modified_date"] == datetime(2026, 2, 1) and current[1]["city"] == "Z"


def _random_extracts(seed: int):
    from medallion_assets_tests.engine.base.test_base_properties import simulate  # noqa: PLC0415

    return [e for _, e in simulate(seed, cases=80, days=7)[1]]


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_extracts_in_any_order_and_batching_match_the_reference_fold(seed):
    """Single extracts (full extracts out of order included) in random batches, some twice: the
    incremental state with its runs gives the history folded from every observation."""
    from medallion_assets_tests.engine.base.test_base_properties import SPEC, Incremental, _sorted  # noqa: PLC0415

    extracts = _random_extracts(seed)
    expected = _sorted(reference_history(extracts, SPEC))
    assert _sorted(build_history(extracts, SPEC)) == expected
    rng = random.Random(seed)
    files = {e.file: e for e in extracts}
    for _ in range(2):
        pending = extracts + rng.sample(extracts, 3)
        rng.shuffle(pending)
        loader = Incremental(files)
        while pending:
            size = rng.randint(1, 3)
            loader.apply(pending[:size])
            pending = pending[size:]
        assert _sorted(loader.table()) == expected


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_daily_full_extracts_one_at_a_time_match_the_reference_fold(seed):
    """Mostly full extracts, each loaded alone after the ones before (the daily case, where keys
    that repeat their open run are set aside and never-seen keys are written directly), with
    deletions, come-backs, old modify dates and a few delta and keys extracts in between."""
    from medallion_assets_tests.engine.base.test_base_properties import SPEC, Incremental, _sorted, simulate  # noqa: PLC0415

    extracts = [e for _, e in simulate(seed, cases=80, days=12, full_share=0.8)[1]]
    expected = _sorted(reference_history(extracts, SPEC))
    loader = Incremental({e.file: e for e in extracts})
    for extract in extracts:
        loader.apply([extract])
    assert _sorted(loader.table()) == expected
    loader.apply([extracts[-1]])  # a re-run changes nothing
    assert _sorted(loader.table()) == expected


def test_state_from_an_older_release_is_refused_with_a_clear_error(tmp_path, land, h):
    from deltalake import write_deltalake

    from medallion_assets.engine.base.schema import BaseLoadError

    old = pa.table({"customer_id": pa.array([1], pa.int64()), "_kind": ["extract"], "_file": ["x"]})
    write_deltalake(str(tmp_path / "base/_state/erp_customer"), old, partition_by=["_kind"])
    land(D1, "full", h.customers((1, "a", "X", ts(1, 9))))
    with pytest.raises(BaseLoadError, match="older version.*recreate: true"):
        load_partition(h.make_table(), tmp_path, D1)
