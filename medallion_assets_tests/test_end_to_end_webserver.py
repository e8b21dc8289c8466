"""The real thing: `dagster dev` (webserver and daemon) on a free localhost port with a temporary
DAGSTER_HOME, `medallion_daily` and `dimensions` launched through the GraphQL API."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient
from deltalake import DeltaTable

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.definitions import defs
from medallion_assets.engine.curated import load_curated_model

pytestmark = pytest.mark.slow  # starts dagster dev and runs jobs through GraphQL

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def server_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


SAMPLE = ["--start-date", "2026-01-01", "--days", "2", "--customers", "200", "--order-lines", "2000", "--seed", "11"]
DAYS = ("2026-01-01", "2026-01-02")


def generate_sample_into(lake: Path) -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "medallion_assets.cli", "--data-dir", str(lake), "sample", "generate", *SAMPLE],
        capture_output=True, text=True, timeout=300,
    )
    assert generated.returncode == 0, generated.stderr


def comparable(table_dir: Path) -> list[tuple]:
    """A base table's rows without the system timestamps of when the load ran."""
    table = DeltaTable(str(table_dir)).to_pyarrow_table()
    table = table.drop_columns([c for c in ("lh_created_date", "lh_modified_date") if c in table.column_names])
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    home, lake = root / "dagster_home", root / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDALLION_DATA_DIR": str(lake)}
    generate_sample_into(lake)
    port = free_port()
    log = open(root / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for(lambda: server_up(port) or process.poll() is not None, 180, "the webserver")
        assert process.poll() is None, (root / "dagster_dev.log").read_text()[-3000:]
        yield DagsterGraphQLClient("127.0.0.1", port_number=port), home, lake, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def run_to_completion(client: DagsterGraphQLClient, job: str, **kwargs) -> str:
    run_id = client.submit_job_execution(job, **kwargs)
    status = wait_for(
        lambda: (
            (s := client.get_run_status(run_id))
            in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
            and s
        ),
        600,
        f"run {run_id} of {job}",
    )
    assert status == dg.DagsterRunStatus.SUCCESS, f"{job} ended {status}"
    return run_id


def step_windows(home: Path, run_id: str) -> dict[str, tuple[float, float]]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.all_logs(run_id)
    starts, ends = {}, {}
    for entry in records:
        if entry.dagster_event is None or entry.step_key is None:
            continue
        if entry.dagster_event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif entry.dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[entry.step_key] = entry.timestamp
    return {step: (starts[step], ends[step]) for step in starts if step in ends}


def test_cli_backfill_runs_each_partition_once_and_equals_day_by_day(dagster_dev, tmp_path):
    _, home, lake, env = dagster_dev
    backfill = subprocess.run(
        [
            str(DAGSTER),
            "job",
            "backfill",
            "-j",
            "landing_to_base",
            "-w",
            "workspace.yaml",
            "--from",
            DAYS[0],
            "--to",
            DAYS[-1],
            "--noprompt",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert backfill.returncode == 0, backfill.stderr[-2000:]

    def finished_runs():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="landing_to_base"))
        done = [r for r in runs if r.is_finished]
        return runs if runs and len(done) == len(runs) else None

    runs = wait_for(finished_runs, 600, "the backfill runs")
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert sorted(r.tags["dagster/partition"] for r in runs) == list(DAYS)  # each partition once

    # The same sample loaded day by day, in order, in process.
    reference = tmp_path / "reference"
    generate_sample_into(reference)
    layer = [a for a in defs.assets if a.key.path[0] in ("landing", "base")]
    with dg.DagsterInstance.ephemeral() as instance:
        for day in DAYS:
            dg.materialize(
                layer,
                partition_key=day,
                instance=instance,
                resources={"lakehouse": LakehouseResource(data_dir=str(reference))},
            )
    for table in ("erp_customer", "erp_employee", "erp_sales_order_line", "erp_product", "finance_budget"):
        assert comparable(lake / "base" / table) == comparable(reference / "base" / table), table


def test_medallion_daily_through_graphql_fills_every_layer(dagster_dev):
    client, home, lake, _ = dagster_dev
    for day in DAYS:
        run_id = run_to_completion(client, "medallion_daily", tags={"dagster/partition": day})
    assert DeltaTable(str(lake / "base" / "erp_customer")).to_pyarrow_dataset().count_rows() > 0
    assert DeltaTable(str(lake / "curated" / "fact_sales")).to_pyarrow_dataset().count_rows() > 0
    assert (lake / "warehouse.duckdb").is_file()

    windows = step_windows(home, run_id)
    model = load_curated_model()
    dimension_steps = {f"curated__{t}" for t in ["dim_calendar", *(d.table for d in model.dimensions.values())]}
    fact_steps = {f"curated__{t}" for t in model.facts}
    dimensions = {s: w for s, w in windows.items() if s in dimension_steps}
    facts = {s: w for s, w in windows.items() if s in fact_steps}
    assert set(dimensions) == dimension_steps and set(facts) == fact_steps
    last_dimension_end = max(end for _, end in dimensions.values())
    assert min(start for start, _ in facts.values()) >= last_dimension_end


def test_dimensions_job_runs_steps_in_parallel(dagster_dev):
    client, home, _, _ = dagster_dev
    run_id = run_to_completion(client, "dimensions")
    model = load_curated_model()
    dimension_steps = {f"curated__{t}" for t in ["dim_calendar", *(d.table for d in model.dimensions.values())]}
    windows = sorted(w for s, w in step_windows(home, run_id).items() if s in dimension_steps)
    assert len(windows) >= 3
    overlapping = any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(windows, windows[1:], strict=False))
    assert overlapping, f"dimension steps ran one after another: {windows}"
