"""Two backfills over the same tables at once, through the PostgreSQL instance with the daemon
running: the queued run coordinator launches all their runs together, and the per-table pools
(limit 1 in ``deploy/dagster.yaml``) keep two runs from writing one table at the same time.
The tables equal a day-by-day load of the same sample."""

import subprocess
from itertools import pairwise

import dagster as dg
import pytest

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.definitions import defs
from medallion_assets_tests.deploy.services import BIN, REPO, deployed_dagster, generate_sample, runs_in_postgres
from medallion_assets_tests.test_end_to_end_webserver import comparable, step_windows, wait_for

pytestmark = pytest.mark.slow

SAMPLE = ["--start-date", "2026-01-01", "--days", "3", "--customers", "200", "--order-lines", "2000", "--seed", "13"]
DAYS = ("2026-01-01", "2026-01-02", "2026-01-03")
BASE_TABLES = ("erp_customer", "erp_employee", "erp_sales_order_line", "erp_product", "finance_budget")


def backfill(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "backfill", "-j", "landing_to_base", "-w", "deploy/workspace.yaml",
         "--from", DAYS[0], "--to", DAYS[-1], "--noprompt"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def load_day_by_day(lake) -> None:
    layer = [a for a in defs.assets if a.key.path[0] in ("landing", "base")]
    with dg.DagsterInstance.ephemeral() as instance:
        for day in DAYS:
            dg.materialize(layer, partition_key=day, instance=instance,
                           resources={"lakehouse": LakehouseResource(data_dir=str(lake))})


def assert_no_table_written_twice_at_once(home, run_ids: list[str]) -> None:
    """Per step (one table each), the windows of all runs follow one another, never overlap."""
    by_step: dict[str, list[tuple[float, float]]] = {}
    for run_id in run_ids:
        for step, window in step_windows(home, run_id).items():
            by_step.setdefault(step, []).append(window)
    assert by_step and all(len(w) == 2 * len(DAYS) for w in by_step.values()), by_step
    for step, windows in by_step.items():
        for (_, earlier_end), (later_start, _) in pairwise(sorted(windows)):
            assert later_start >= earlier_end, f"{step}: two runs wrote the table at once: {sorted(windows)}"


def test_two_backfills_at_once_equal_a_day_by_day_load(tmp_path_factory, postgres_url):
    root = tmp_path_factory.mktemp("pg_backfills")
    with deployed_dagster(root, postgres_url, SAMPLE) as (deployment, _):
        first, second = backfill(deployment.env), backfill(deployment.env)
        for cli in (first, second):
            output, _ = cli.communicate(timeout=300)
            assert cli.returncode == 0, output[-2000:]

        def all_finished():
            with deployment.instance() as instance:
                runs = instance.get_runs(filters=dg.RunsFilter(job_name="landing_to_base"))
            return runs if len(runs) == 2 * len(DAYS) and all(r.is_finished for r in runs) else None

        runs = wait_for(all_finished, 900, "both backfills' runs")
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(runs)
        assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(DAYS * 2)
        assert len({r.tags["dagster/backfill"] for r in runs}) == 2
        assert sorted(run_id for run_id, _ in runs_in_postgres(postgres_url, "landing_to_base")) == sorted(r.run_id for r in runs)
        assert_no_table_written_twice_at_once(deployment.home, [r.run_id for r in runs])

    reference = root / "reference"
    generate_sample(reference, SAMPLE)
    load_day_by_day(reference)
    for table in BASE_TABLES:
        assert comparable(deployment.lake / "base" / table) == comparable(reference / "base" / table), table
