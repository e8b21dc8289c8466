"""Rolling back a bad run: every table it wrote returns to its content before it, others stay."""

import time
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.definitions import defs
from medallion_assets.engine.storage.rollback import candidate_tables, execute_rollback, plan_rollback
from medallion_assets.orchestration.rollback import rollback_job
from medallion_assets.sample import generate_sample

OP = "rollback_delta_tables"


def snapshot(data_dir):
    """{layer/table: (version, sorted rows)} of every table a run may write."""
    out = {}
    for layer, table, path in candidate_tables(data_dir):
        dt = DeltaTable(str(path))
        out[f"{layer}/{table}"] = (dt.version(), sorted(dt.to_pyarrow_table().to_pylist(), key=repr))
    return out


def observations(result):
    return [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]


def run_rollback(instance, data_dir, run_id, **extra):
    return rollback_job.execute_in_process(
        instance=instance,
        resources={"lakehouse": LakehouseResource(data_dir=str(data_dir))},
        run_config={"ops": {OP: {"config": {"run_id": run_id, **extra}}}},
        raise_on_error=False,
    )


@pytest.mark.slow  # several Dagster runs and restores: the slowest test outside the end-to-end files
def test_rollback_restores_every_table_of_the_bad_run_and_is_idempotent(tmp_path, monkeypatch):
    generate_sample(tmp_path, seed=1, days=3, customers=200, order_lines=1500, log=lambda m: None)
    monkeypatch.setenv("MEDALLION_DATA_DIR", str(tmp_path))
    daily = defs.resolve_job_def("medallion_daily")
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2026-01-01", "2026-01-02"):
            assert daily.execute_in_process(partition_key=day, instance=instance).success
        good = snapshot(tmp_path)
        assert any(k.startswith("base/") for k in good) and any(k.startswith("curated/") for k in good)
        assert any(k.startswith("base/_state/") for k in good)

        bad = daily.execute_in_process(partition_key="2026-01-03", instance=instance)
        assert bad.success
        after_bad = snapshot(tmp_path)
        changed = {k for k in good if after_bad[k][1] != good[k][1]}
        assert changed, "the bad run must change something for this test to mean anything"

        first = run_rollback(instance, tmp_path, bad.run_id)
        assert first.success
        restored = snapshot(tmp_path)
        for name, (_version, rows) in good.items():
            assert restored[name][1] == rows, f"{name} not back to its content before the bad run"
            if restored[name][0] != after_bad[name][0]:
                assert restored[name][0] > after_bad[name][0], f"{name}: a restore is a new commit"
        for name in changed:
            assert restored[name][0] == after_bad[name][0] + 1
        created = set(after_bad) - set(good)
        for name in created:  # tables the bad run created are kept, reported, never deleted
            assert restored[name] == after_bad[name]

        observed = observations(first)
        by_table = {o.metadata["delta_table"].value: o for o in observed}
        assert changed <= set(by_table)
        for name in changed:
            meta = by_table[name].metadata
            assert meta["run_id"].value == bad.run_id
            assert meta["version_before"].value < after_bad[name][0]
            assert meta["version_after_restore"].value == restored[name][0]
            assert meta["commits_undone"].value >= 1
            assert by_table[name].asset_key.path[0] in ("base", "curated")
        assert {n for n, o in by_table.items() if o.metadata["created_by_run"].value} == created
        assert (tmp_path / "warehouse.duckdb").is_file()

        second = run_rollback(instance, tmp_path, bad.run_id)
        assert second.success
        assert snapshot(tmp_path) == restored
        assert all(o.metadata["created_by_run"].value for o in observations(second))

        unknown = run_rollback(instance, tmp_path, "no-such-run")
        assert not unknown.success
        assert snapshot(tmp_path) == restored


def _write(path, value, mode="append"):
    write_deltalake(str(path), pa.table({"id": [value]}), mode=mode)


def _now():
    time.sleep(0.005)  # commit timestamps have millisecond resolution; keep the window's edges apart
    moment = datetime.now(UTC).replace(tzinfo=None)
    time.sleep(0.005)
    return moment


def test_only_tables_written_in_the_window_are_restored_and_later_commits_are_refused(tmp_path):
    untouched, written, created = tmp_path / "base" / "erp_a", tmp_path / "curated" / "dim_b", tmp_path / "curated" / "dim_c"
    state = tmp_path / "base" / "_state" / "erp_a"
    _write(untouched, 1)
    _write(written, 1)
    _write(state, 1)
    start = _now()
    _write(written, 2)
    _write(written, 3, mode="overwrite")
    _write(state, 2)
    _write(created, 1)
    end = _now()

    plans = {p.name: p for p in plan_rollback(tmp_path, start, end)}
    assert set(plans) == {"curated/dim_b", "curated/dim_c", "base/_state/erp_a"}
    assert plans["curated/dim_b"].action == "restore" and plans["curated/dim_b"].version_before == 0
    assert plans["curated/dim_b"].commits_undone == 2
    assert plans["curated/dim_c"].action == "created_by_run"

    _write(written, 4)  # a later run; restoring would undo it too
    with pytest.raises(ValueError, match="dim_b"):
        execute_rollback(plan_rollback(tmp_path, start, end))
    assert DeltaTable(str(written)).version() == 3

    results = execute_rollback(plan_rollback(tmp_path, start, end), undo_later_commits=True)
    assert sorted(r.plan.name for r in results if r.restored) == ["base/_state/erp_a", "curated/dim_b"]
    assert DeltaTable(str(written)).to_pyarrow_table().column("id").to_pylist() == [1]
    assert DeltaTable(str(state)).to_pyarrow_table().column("id").to_pylist() == [1]
    assert DeltaTable(str(untouched)).version() == 0
    assert DeltaTable(str(created)).to_pyarrow_table().num_rows == 1

    again = execute_rollback(plan_rollback(tmp_path, start, end))
    assert not any(r.restored for r in again)
    assert DeltaTable(str(written)).version() == 4

    quiet_start = _now()
    assert plan_rollback(tmp_path, quiet_start, _now()) == []  # a window with no commits restores nothing


def test_a_running_or_unknown_run_is_refused(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_run(dg.DagsterRun(job_name="medallion_daily", run_id="still-going", status=dg.DagsterRunStatus.STARTED))
        for run_id, reason in (("still-going", "wait until it finishes"), ("no-such-run", "no run with id")):
            result = run_rollback(instance, tmp_path, run_id)
            assert not result.success
            failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
            assert reason in str(failure.event_specific_data.error)
