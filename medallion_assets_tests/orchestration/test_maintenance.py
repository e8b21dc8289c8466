import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.storage.maintenance import delta_tables, file_stats, maintain_table
from medallion_assets.orchestration.maintenance import maintenance_job


def small_writes(path, n=6):
    for i in range(n):
        write_deltalake(str(path), pa.table({"id": [i], "value": [f"v{i}"]}), mode="append")
    write_deltalake(str(path), pa.table({"id": list(range(n)), "value": ["x"] * n}), mode="overwrite")


def test_compaction_and_vacuum_shrink_the_file_count_and_keep_the_rows(tmp_path):
    table = tmp_path / "base" / "erp_thing"
    small_writes(table)
    before = file_stats(table)
    assert before.disk_files == 7
    result = maintain_table(table, retention_days=0)
    assert result.after.disk_files < before.disk_files
    assert result.after.active_files == 1
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 6


def test_maintenance_job_observes_every_table(tmp_path):
    small_writes(tmp_path / "base" / "erp_a", 3)
    small_writes(tmp_path / "curated" / "dim_b", 3)
    (tmp_path / "base" / "_state").mkdir()
    assert [p.name for p in delta_tables(tmp_path)] == ["erp_a", "dim_b"]
    with dg.DagsterInstance.ephemeral() as instance:
        result = maintenance_job.execute_in_process(
            instance=instance,
            resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
            run_config={"ops": {"compact_and_vacuum": {"config": {"retention_days": 0}}}},
        )
        assert result.success
        observed = {
            e.event_specific_data.asset_observation.asset_key.to_user_string(): e.event_specific_data.asset_observation.metadata
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        }
    assert set(observed) == {"base/erp_a", "curated/dim_b"}
    assert observed["base/erp_a"]["files_before"].value == 4
    assert observed["base/erp_a"]["files_after"].value < 4
