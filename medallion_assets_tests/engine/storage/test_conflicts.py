"""retry_on_commit_conflict re-runs the whole cycle on a Delta commit conflict, and gives up cleanly."""

import pytest
from deltalake.exceptions import CommitFailedError, DeltaError

from medallion_assets.engine.storage.conflicts import retry_on_commit_conflict


def _flaky(failures: int):
    calls: list[int] = []

    def cycle() -> str:
        calls.append(len(calls))
        if len(calls) <= failures:
            raise CommitFailedError(f"conflict {len(calls)}")
        return "committed"

    return cycle, calls


def test_retries_a_commit_conflict_until_the_cycle_succeeds():
    cycle, calls = _flaky(2)
    pauses: list[float] = []
    assert retry_on_commit_conflict(cycle, attempts=5, base_delay=0.05, sleep=pauses.append) == "committed"
    assert len(calls) == 3
    assert len(pauses) == 2
    assert 0 <= pauses[0] <= 0.05 and 0 <= pauses[1] <= 0.1  # jittered, doubling bound


def test_gives_up_with_the_original_conflict_after_the_attempts():
    cycle, calls = _flaky(10)
    with pytest.raises(CommitFailedError, match="conflict 3"):
        retry_on_commit_conflict(cycle, attempts=3, sleep=lambda _: None)
    assert len(calls) == 3


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def cycle() -> None:
        calls.append(1)
        raise DeltaError("table already exists")

    with pytest.raises(DeltaError, match="already exists"):
        retry_on_commit_conflict(cycle, sleep=lambda _: None)
    assert calls == [1]


def test_real_delta_conflict_is_a_commit_failed_error(tmp_path):
    """The class we retry on is the one deltalake raises when a stale snapshot commits."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"k": [1, 2]}))
    stale = DeltaTable(path)
    DeltaTable(path).delete("k = 1")
    with pytest.raises(CommitFailedError):
        stale.delete("k = 1")
