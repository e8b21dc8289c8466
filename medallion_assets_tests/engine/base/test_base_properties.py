"""Randomised extract sequences: the SCD2 invariants of docs/design.md hold, the current rows equal
the source's final state, and the table is a function of the set of extracts (any order, reruns).

Each simulated source holds several hundred independent small cases side by side (disjoint key
ranges), so one run of a few seconds checks hundreds of cases.
"""

import random
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from medallion_assets.engine.base import HistorySpec, build_history, load_partition, plan
from medallion_assets.engine.base.history import empty_state
from medallion_assets.engine.base.invariants import scd2_violations
from medallion_assets.engine.base.reader import Extract

SCHEMA = pa.schema([("customer_id", pa.int64()), ("segment", pa.string()), ("city", pa.string()), ("modified_at", pa.timestamp("us"))])
SPEC = HistorySpec(
    keys=("customer_id",),
    columns=tuple(SCHEMA.names),
    modify_date_column="modified_at",
    history_columns=("segment", "city"),
)
START = date(2026, 1, 1)


def simulate(seed: int, cases: int, days: int, keys_per_case: int = 3, full_share: float = 0.2, full_duplicates: int = 0):
    """Day-by-day source changes and the extracts a nightly job would land (full, delta, keys);
    ``full_duplicates`` rows of each full extract appear twice."""
    rng = random.Random(seed)
    alive: dict[int, tuple] = {}
    last_m: dict[int, datetime] = {}
    extracts: list[tuple[date, Extract]] = []
    all_keys = [c * 100 + k for c in range(cases) for k in range(keys_per_case)]
    for index in range(days):
        day = START + timedelta(days=index)
        extract_ts = datetime(day.year, day.month, day.day, 22)
        changed: list[tuple] = []
        for key in all_keys:
            r = rng.random()
            hour = datetime(day.year, day.month, day.day, rng.randrange(6, 21), rng.randrange(60))
            late = hour - timedelta(days=rng.choice((1, 2))) if rng.random() < 0.2 else hour
            if key in alive:
                if r < 0.25:
                    m = max(late, last_m[key] + timedelta(minutes=1))
                    alive[key] = (key, rng.choice("abc"), rng.choice("XY"), m)
                    changed.append(alive[key])
                elif r < 0.35:
                    del alive[key]
            elif r < (0.9 if index == 0 else 0.2):
                if key in last_m and rng.random() < 0.3:
                    m = last_m[key]  # restored with its old modify date
                    alive[key] = (key, rng.choice("ab"), "X", m)
                else:
                    m = max(late, last_m.get(key, datetime.min) + timedelta(minutes=1))
                    alive[key] = (key, rng.choice("abc"), rng.choice("XY"), m)
                changed.append(alive[key])
            if key in alive:
                last_m[key] = max(last_m.get(key, datetime.min), alive[key][3])
        if index == 0 or rng.random() < full_share:
            rows = list(alive.values())
            if full_duplicates:
                rows += rng.sample(rows, min(len(rows), full_duplicates))
                rng.shuffle(rows)
            extracts.append((day, Extract(_table(rows), "full", extract_ts, f"full-{day}")))
        else:
            rows = changed + rng.sample(changed, min(len(changed), 3))  # exact duplicates
            rng.shuffle(rows)
            extracts.append((day, Extract(_table(rows), "delta", extract_ts, f"delta-{day}")))
            if index == days - 1 or rng.random() < 0.8:
                ids = pa.table({"customer_id": pa.array(sorted(alive), pa.int64())})
                extracts.append((day, Extract(ids, "keys", extract_ts, f"keys-{day}")))
    return alive, extracts


def _table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA)


def _sorted(table: pa.Table) -> list[dict]:
    return table.sort_by([("customer_id", "ascending"), ("lh_valid_from", "ascending")]).to_pylist()


class Incremental:
    """What the loader does, in memory: skip applied files, add the rest, replace affected keys."""

    def __init__(self, files: dict[str, Extract]):
        self.state = empty_state(SCHEMA)
        self.rows: list[dict] | None = None
        self.files = files

    def apply(self, batch: list[Extract]) -> None:
        applied = set(
            pc.filter(self.state.column("_file"), pc.equal(self.state.column("_kind"), "extract")).to_pylist()
        )
        new = [e for e in batch if e.file not in applied]
        if not new:
            return
        result = plan(
            self.state, new, SPEC, schema=SCHEMA, reread_keys=lambda f: self.files[f].rows.select(["customer_id"])
        )
        self.state = pa.concat_tables([self.state, result.new_state])
        touched = set(result.affected.column("customer_id").to_pylist())
        kept = [] if self.rows is None else [r for r in self.rows if r["customer_id"] not in touched]
        self.rows = kept + result.history.to_pylist()

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows)


def _by_day(extracts: list[tuple[date, Extract]]) -> dict[date, list[Extract]]:
    by_day: dict[date, list[Extract]] = {}
    for day, extract in extracts:
        by_day.setdefault(day, []).append(extract)
    return by_day


def loaded_in_date_order(extracts: list[tuple[date, Extract]]) -> pa.Table:
    """The table after loading each day's extracts in date order."""
    by_day = _by_day(extracts)
    in_order = Incremental({e.file: e for _, e in extracts})
    for day in sorted(by_day):
        in_order.apply(by_day[day])
    return in_order.table()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_histories_keep_invariants_and_match_the_source(seed):
    alive, extracts = simulate(seed, cases=150, days=7)
    history = build_history([e for _, e in extracts], SPEC)
    assert scd2_violations(history, ["customer_id"]) == dict.fromkeys(scd2_violations(history, ["customer_id"]), 0)
    current = {r["customer_id"]: r for r in history.to_pylist() if r["lh_is_current"]}
    live = {k: (seg, city) for k, (_, seg, city, _) in alive.items()}
    assert {k: (r["segment"], r["city"]) for k, r in current.items() if not r["lh_is_deleted"]} == live
    assert {k for k, r in current.items() if r["lh_is_deleted"]} == set(current) - set(live)
    # only versions that a deletion opened carry the flag, and they repeat the previous content
    rows = _sorted(history)
    for before, after in zip(rows, rows[1:], strict=False):
        if after["customer_id"] == before["customer_id"] and after["lh_is_deleted"]:
            assert not before["lh_is_deleted"] and (after["segment"], after["city"]) == (
                before["segment"],
                before["city"],
            )


@pytest.mark.parametrize("seed", [11, 12])
def test_any_order_and_reruns_give_the_same_history(seed):
    _, extracts = simulate(seed, cases=120, days=6)
    expected = _sorted(build_history([e for _, e in extracts], SPEC))
    by_day = _by_day(extracts)
    files = {e.file: e for _, e in extracts}
    rng = random.Random(seed)
    assert _sorted(loaded_in_date_order(extracts)) == expected
    for _ in range(2):
        days = sorted(by_day) + rng.sample(sorted(by_day), 2)  # every day, plus two reruns
        rng.shuffle(days)
        shuffled = Incremental(files)
        for day in days:
            shuffled.apply(by_day[day])
        assert _sorted(shuffled.table()) == expected


def test_partitions_in_any_order_through_delta(tmp_path, h):
    """The same property end to end: landing files, load_partition, Delta tables."""
    from medallion_assets.engine.storage.files import write_table_file
    from medallion_assets.engine.storage.paths import landing_file_path

    _, extracts = simulate(5, cases=40, days=5)
    for day, extract in extracts:
        path = landing_file_path(
            tmp_path / "a", "erp", "customer", extract.load_type, day, extracted_at=extract.extracted_at, fmt="parquet"
        )
        write_table_file(extract.rows, path, "parquet")
    days = sorted({d for d, _ in extracts})
    table = h.make_table(format="parquet", read_options={}, history_columns=["segment", "city"])
    for day in days:
        load_partition(table, tmp_path / "a", day)
    expected = h.read_base(tmp_path / "a")
    import shutil

    shutil.copytree(tmp_path / "a" / "landing", tmp_path / "b" / "landing")
    for day in [days[3], days[1], days[4], days[0], days[3], days[2], days[1]]:
        load_partition(table, tmp_path / "b", day)
    assert h.read_base(tmp_path / "b") == expected
    assert len(expected) > 40


@pytest.mark.parametrize("seed", [21, 22])
def test_daily_deltas_with_keys_and_a_weekly_full_take_the_short_paths(seed, monkeypatch):
    """Daily deltas with a keys extract and now and then a full extract, loaded in date order: a
    keys extract marks only keys with no run or an open absence, a full extract marks the versions
    the deltas brought without folding them again; the history is still the reference fold's."""
    from medallion_assets.engine.base.history import reference_history
    from medallion_assets.engine.base.history.steps import Steps

    taken = {"marked": 0, "keys": 0}
    split_marked, keys_to_mark = Steps.split_marked, Steps.keys_to_mark

    def counting_split(self):
        split_marked(self)
        taken["marked"] += self.marked

    def counting_keys(self, name, extract):
        relation = keys_to_mark(self, name, extract)
        taken["keys"] += relation == "k_marked"
        return relation

    monkeypatch.setattr(Steps, "split_marked", counting_split)
    monkeypatch.setattr(Steps, "keys_to_mark", counting_keys)
    _, extracts = simulate(seed, cases=150, days=14, full_share=0.3)
    assert _sorted(loaded_in_date_order(extracts)) == _sorted(reference_history([e for _, e in extracts], SPEC))
    assert taken["marked"] > 0 and taken["keys"] > 0


@pytest.mark.parametrize("seed", [31, 32])
def test_extracts_with_exact_duplicate_rows_match_the_reference_fold(seed, monkeypatch):
    """Full and delta extracts that repeat some rows exactly, loaded in date order: their repeated
    keys are listed (only those rows are deduplicated and grouped), and the history is the
    reference fold of the extracts deduplicated beforehand, where no key repeats."""
    from medallion_assets.engine.base.history import observe as engine
    from medallion_assets.engine.base.history import reference_history

    repeated = []
    real = engine.repeated_keys

    def counting(table, keys):
        found = real(table, keys)
        repeated.append(0 if found is None else len(found))
        return found

    monkeypatch.setattr(engine, "repeated_keys", counting)
    _, extracts = simulate(seed, cases=150, days=10, full_share=0.4, full_duplicates=25)
    history = loaded_in_date_order(extracts)
    assert max(repeated) >= 25  # the full extracts' repeated keys were listed
    distinct = [
        Extract(e.rows.group_by(e.rows.column_names).aggregate([]).select(e.rows.column_names), e.load_type, e.extracted_at, e.file)
        for _, e in extracts
    ]
    assert _sorted(history) == _sorted(reference_history(distinct, SPEC))
