"""The whole lake on S3 (moto's server): the sample for three days, base and curated, equal to the
same run on local disk; then the landing sensor's scan, maintenance, rollback, the serving
database and SIGKILLed base loads, all on the bucket.

Tables are compared as test_crash_safety does: every column but the load-time stamps
``lh_created_date`` / ``lh_modified_date``, rows in any order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deltalake.exceptions import TableNotFoundError

from medallion_assets.engine.landing.scan import scan_for_new_files
from medallion_assets.engine.landing.sources import load_sources
from medallion_assets.engine.serving import refresh_serving_views
from medallion_assets.engine.storage.lake import LakePath, as_path, is_delta, open_delta, write_delta
from medallion_assets.engine.storage.maintenance import delta_tables, file_stats, maintain_table
from medallion_assets.engine.storage.paths import list_landing_files, resolve_data_dir
from medallion_assets.engine.storage.rollback import execute_rollback, plan_rollback
from medallion_assets.sample import generate_sample
from medallion_assets_tests.crash_worker import run_base, run_curated, sample_days
from medallion_assets_tests.lake_contents import LOAD_STAMPS, landing_contents
from medallion_assets_tests.lake_contents import rows as sorted_rows
from medallion_assets_tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, create_bucket, s3_environment

pytestmark = pytest.mark.slow  # the sample's three days twice, plus SIGKILL trials, over HTTP

SAMPLE = dict(seed=9, days=3, customers=300, order_lines=3000, log=lambda message: None)


def delta_dirs(data_dir: Path | LakePath) -> dict[str, Path | LakePath]:
    found = {}
    for layer in ("base", "base/_state", "base/_quarantine", "curated"):
        folder = data_dir / layer
        if folder.is_dir():
            for entry in sorted(folder.iterdir(), key=lambda p: p.name):
                if is_delta(entry):
                    found[f"{layer}/{entry.name}"] = entry
    return found




def table_contents(data_dir: Path | LakePath) -> dict[str, list[tuple]]:
    return {name: sorted_rows(open_delta(path).to_pyarrow_table(), LOAD_STAMPS) for name, path in delta_dirs(data_dir).items()}




@dataclass
class Run:
    local: Path  # the sample, base and curated on local disk
    remote: LakePath  # the same on the bucket
    remote_uri: str
    bucket: str
    endpoint: str
    local_dir: Path


@pytest.fixture(scope="module")
def run(s3_server, tmp_path_factory) -> Run:
    """Both lakes built once for the module, with the AWS variables set for its whole duration."""
    root = tmp_path_factory.mktemp("s3lake")
    bucket = "medallion-e2e"
    create_bucket(s3_server, bucket)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_environment(s3_server).items():
            patch.setenv(name, value)
        patch.setenv("MEDALLION_LOCAL_DIR", str(root / "remote-local"))
        local = root / "local"
        local.mkdir()
        uri = f"s3://{bucket}/lake"
        remote = resolve_data_dir(uri)
        for data_dir in (local, remote):
            generate_sample(data_dir, **SAMPLE)
            run_base(data_dir, sample_days())
            run_curated(data_dir)
        yield Run(local, remote, uri, bucket, s3_server, root / "remote-local")


def test_every_table_on_s3_equals_the_local_run(run):
    assert landing_contents(run.remote) == landing_contents(run.local)
    local, remote = table_contents(run.local), table_contents(run.remote)
    assert sorted(remote) == sorted(local) and any(n.startswith("curated/") for n in local)
    assert [name for name in local if remote[name] != local[name]] == []


def test_nothing_but_objects_of_the_lake_is_in_the_bucket(run):
    """No temporary object, no lock file, no source database went to the bucket."""
    filesystem = run.remote.lake.filesystem
    keys = [i.path for i in filesystem.get_file_info(pafs.FileSelector(run.bucket, recursive=True)) if i.is_file]
    top = {k.split("/")[2] for k in keys if k.startswith(f"{run.bucket}/lake/")}
    assert top == {"landing", "base", "curated"}
    assert not [k for k in keys if "/." in k or k.endswith(".lock") or k.endswith(".duckdb")]
    assert (run.local_dir / "sources").is_dir()  # the sample's ERP lives beside the lake, locally


def test_the_landing_scan_lists_new_s3_files_only(run):
    systems = load_sources()
    first, cursor = scan_for_new_files(run.remote, systems, None)
    assert first and all(isinstance(f.path, LakePath) for f in first if not f.dropped)
    again, cursor = scan_for_new_files(run.remote, systems, cursor)
    assert again == []
    state = json.loads(cursor)["landing"]
    newest = max(sample_days())
    assert max(entry["newest"] for entry in state.values()) == newest.isoformat()
    # a new file in the newest day shows up on the next scan, and only it
    landing = next(f for f in first if not f.dropped and f.partition_date == newest)
    stamp = landing.path.stem.rsplit("_", 1)[1]
    later = landing.path.with_name(landing.path.name.replace(stamp, f"{newest:%Y%m%d}T235959"))
    # ... and a file put into the first day's prefix is not, because old days are not listed again
    listed = list_landing_files(run.remote, landing.source, landing.object)
    oldest = next(f for f in listed if f.partition_date < newest - timedelta(days=1))
    old_stamp = oldest.path.stem.rsplit("_", 1)[1]
    late_old = oldest.path.with_name(oldest.path.name.replace(old_stamp, f"{oldest.partition_date:%Y%m%d}T235959"))
    filesystem = run.remote.lake.filesystem
    filesystem.copy_file(landing.path.fs_path, later.fs_path)
    filesystem.copy_file(oldest.path.fs_path, late_old.fs_path)
    try:
        found, _ = scan_for_new_files(run.remote, systems, cursor)
        assert [f.path for f in found] == [later]
    finally:
        later.unlink()
        late_old.unlink()


def test_the_serving_database_holds_the_tables_of_a_remote_lake(run):
    database = refresh_serving_views(run.remote)
    assert database.parent == run.local_dir and database.is_file()
    expected = open_delta(run.remote / "curated" / "dim_customer").to_pyarrow_dataset().count_rows()
    con = duckdb.connect(str(database), read_only=True)
    try:
        (count,) = con.execute("SELECT count(*) FROM curated.dim_customer").fetchone()
    finally:
        con.close()
    assert count == expected > 0


def test_maintenance_and_rollback_on_s3(run):
    """Compaction and vacuum of a fragmented table, a rollback of that compaction, then a vacuum of
    every table of the lake: the rows never change."""
    root = resolve_data_dir(f"s3://{run.bucket}/maintenance")
    path = root / "base" / "erp_fragmented"
    for day in range(4):
        write_delta(path, pa.table({"id": [day, day + 10]}), mode="append")
    rows = sorted_rows(open_delta(path).to_pyarrow_table(), LOAD_STAMPS)
    time.sleep(1.1)  # the rollback window must start after the table's creating commits
    start = datetime.now(UTC).replace(tzinfo=None)
    result = maintain_table(path, retention_days=7)  # keeps the week's files: the rollback needs them
    assert (result.before.active_files, result.after.active_files, result.files_compacted) == (4, 1, 4)
    end = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    plans = plan_rollback(root, start, end)
    assert [(p.table, p.action) for p in plans] == [("erp_fragmented", "restore")]
    assert [o.error for o in execute_rollback(plans)] == [None]
    assert file_stats(path).active_files == 4 and sorted_rows(open_delta(path).to_pyarrow_table(), LOAD_STAMPS) == rows
    result = maintain_table(path, retention_days=0)
    assert result.after.disk_files == 1 and sorted_rows(open_delta(path).to_pyarrow_table(), LOAD_STAMPS) == rows
    before = table_contents(run.remote)
    for table in delta_tables(run.remote):
        maintain_table(table, retention_days=0)
    assert table_contents(run.remote) == before


def test_no_secret_in_errors_or_reprs(run):
    assert SECRET_KEY not in repr(run.remote) and SECRET_KEY not in repr(run.remote.lake)
    with pytest.raises(TableNotFoundError) as caught:
        open_delta(run.remote / "base" / "no_such_table")
    assert SECRET_KEY not in str(caught.value)
    assert as_path(run.remote_uri) == run.remote


def test_a_sigkilled_base_load_on_s3_leaves_readable_tables_and_reruns_to_the_same_tables(run, tmp_path):
    from medallion_assets_tests.test_crash_safety import kill_worker, run_worker

    reference = {n: r for n, r in table_contents(run.remote).items() if n.startswith("base")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_environment(run.endpoint).items():
            patch.setenv(name, value)
        patch.setenv("MEDALLION_LOCAL_DIR", str(run.local_dir))
        clean = _trial_root(run, "clean", tmp_path)
        duration = run_worker("base", clean)  # uninterrupted, in a worker process: the kill window
        assert _base_tables(clean.root) == reference
        kills = []
        for trial, fraction in enumerate((0.3, 0.7)):
            handle = _trial_root(run, f"trial-{trial}", tmp_path)
            killed = kill_worker("base", handle, duration * fraction)
            kills.append(killed)
            for path in delta_dirs(handle.root).values():
                open_delta(path).to_pyarrow_table()  # every table reads fully at its latest version
            run_worker("base", handle)
            assert _base_tables(handle.root) == reference, f"trial {trial} (killed: {killed}): tables differ"
        assert any(kills), "no trial was killed before it finished"


def test_a_sigkilled_landing_extract_on_s3_leaves_only_whole_objects(run, tmp_path):
    """The last day's extracts forced again and killed halfway: every object a reader lists reads
    fully (uploads appear whole), and a re-run lands exactly the sample's files."""
    from medallion_assets_tests.test_crash_safety import kill_worker, run_worker

    clean = landing_contents(run.remote)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_environment(run.endpoint).items():
            patch.setenv(name, value)
        patch.setenv("MEDALLION_LOCAL_DIR", str(run.local_dir))
        handle = _trial_root(run, "landing-trial", tmp_path)
        duration = run_worker("landing", handle)
        assert landing_contents(handle.root) == clean
        killed = kill_worker("landing", handle, duration * 0.5)
        after_kill = landing_contents(handle.root)  # raises if a listed object is partial
        assert set(after_kill) <= set(clean) and all(after_kill[k] == clean[k] for k in after_kill)
        run_worker("landing", handle)
        assert landing_contents(handle.root) == clean, f"killed: {killed}"


def _base_tables(root: LakePath) -> dict[str, list[tuple]]:
    return {n: r for n, r in table_contents(root).items() if n.startswith("base")}


class _WorkerRoot:
    """What the crash helpers need of a data dir: ``str()`` for the worker's argument (the URI),
    ``parent``/``name`` for its log file (a local folder)."""

    def __init__(self, log_dir: Path, root: LakePath) -> None:
        self.parent, self.name, self.root = log_dir, "worker", root

    def __str__(self) -> str:
        return str(self.root)


def _trial_root(run: Run, name: str, tmp_path: Path) -> _WorkerRoot:
    """A new prefix of the bucket holding a copy of the sample's landing files only."""
    filesystem = run.remote.lake.filesystem
    prefix = f"{run.bucket}/{name}"
    pafs.copy_files(f"{run.bucket}/lake/landing", f"{prefix}/landing", filesystem, filesystem)
    log_dir = tmp_path / name
    log_dir.mkdir()
    return _WorkerRoot(log_dir, resolve_data_dir(f"s3://{prefix}"))


def test_medallion_daily_on_an_s3_lake_loads_the_same_base_tables(run, monkeypatch):
    """The Dagster job, with ``MEDALLION_DATA_DIR`` an ``s3://`` URI: landing keeps the sample's
    extracts, base loads day by day as the engine run did."""
    import dagster as dg
    from dagster._serdes import serialize_value

    from medallion_assets.definitions import defs

    filesystem = run.remote.lake.filesystem
    pafs.copy_files(f"{run.bucket}/lake/landing", f"{run.bucket}/daily/landing", filesystem, filesystem)
    monkeypatch.setenv("MEDALLION_DATA_DIR", f"s3://{run.bucket}/daily")
    job = defs.resolve_job_def("medallion_daily")
    with dg.DagsterInstance.ephemeral() as instance:
        for day in sample_days():
            result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
            assert result.success
            events = "\n".join(serialize_value(record) for record in instance.all_logs(result.run_id))
            assert SECRET_KEY not in events and ACCESS_KEY not in events
    daily = resolve_data_dir(f"s3://{run.bucket}/daily")
    assert _base_tables(daily) == _base_tables(run.local)
    curated = {n for n in table_contents(daily) if n.startswith("curated/")}
    assert curated == {n for n in table_contents(run.local) if n.startswith("curated/")}
    assert (run.local_dir / "warehouse.duckdb").is_file()


def _recreate_bucket(endpoint: str, name: str) -> None:
    """The bucket deleted with all it holds and created again: a new, empty lake at the same URI."""
    import boto3

    s3 = boto3.resource("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name=REGION)
    bucket = s3.Bucket(name)
    bucket.objects.all().delete()
    bucket.delete()
    create_bucket(endpoint, name)


@pytest.mark.slow
def test_two_demos_on_two_fresh_lakes_at_one_uri_both_work(s3_server, tmp_path):
    """Without MEDALLION_LOCAL_DIR the local working folder is scoped by the lake's own id, so a
    second demo on a new bucket at the same URI never meets the first lake's sample database."""
    bucket = f"medallion-demo-{uuid.uuid4().hex[:8]}"
    create_bucket(s3_server, bucket)
    uri = f"s3://{bucket}/lake"
    env = {k: v for k, v in os.environ.items() if k != "MEDALLION_LOCAL_DIR"}
    env.update(s3_environment(s3_server), TMPDIR=str(tmp_path / "tmp"), MEDALLION_DATA_DIR=uri)
    (tmp_path / "tmp").mkdir()
    folders = []
    for attempt in (1, 2):
        if attempt == 2:
            _recreate_bucket(s3_server, bucket)
        env["DAGSTER_HOME"] = str(tmp_path / f"home{attempt}")
        done = subprocess.run(
            [sys.executable, "-m", "medallion_assets.cli", "demo", "--days", "1", "--customers", "100", "--order-lines", "500"],
            capture_output=True, text=True, timeout=1800, env=env,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (line,) = [x for x in done.stdout.splitlines() if x.startswith("local working folder of ")]
        folder = Path(line.rsplit(": ", 1)[1])
        assert folder.is_relative_to(tmp_path / "tmp") and (folder / "sources").is_dir()
        assert "generating the sample" in done.stdout and "curated.fact_sales" in done.stdout
        folders.append(folder)
    assert folders[0] != folders[1]
