"""``medallion_daily`` with every step on celery workers: the deployed instance (PostgreSQL), two
worker processes on a real Redis broker started with ``dagster-celery worker start`` and
``deploy/celery.yaml``. Dimensions run on more than one worker, facts after them, and the tables
equal an in-process run of ``medallion_daily`` on a second copy of the same sample.

Other sessions share the Redis server: this module's queues live under a key prefix of its own
(celery's ``global_keyprefix`` transport option, on the job and on the workers alike).
"""

import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from medallion_assets.definitions import defs
from medallion_assets.engine.curated import load_curated_model
from medallion_assets.engine.storage.paths import list_delta_tables
from medallion_assets.orchestration.jobs import CELERY_BACKEND_ENV, CELERY_BROKER_ENV
from medallion_assets_tests.deploy.services import BIN, REPO, deployed_dagster, generate_sample, runs_in_postgres
from medallion_assets_tests.test_end_to_end_webserver import comparable, run_to_completion, step_windows, wait_for

pytestmark = pytest.mark.slow

SAMPLE = ["--start-date", "2026-01-01", "--days", "2", "--customers", "200", "--order-lines", "2000", "--seed", "17"]
DAYS = ("2026-01-01", "2026-01-02")
WORKERS = ("medallion_w1", "medallion_w2")
WORKER_EVENT = "in celery worker"


def celery_settings(tmp: Path, prefix: str) -> tuple[Path, dict]:
    """``deploy/celery.yaml`` plus this module's key prefix: a workers' file and the run config."""
    settings = yaml.safe_load((REPO / "deploy" / "celery.yaml").read_text())
    settings["execution"]["config"]["config_source"] = {"broker_transport_options": {"global_keyprefix": prefix}}
    path = tmp / "celery.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path, {"execution": settings["execution"]}


def worker_of_each_step(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the celery worker that ran it, from the worker's own engine event."""
    workers = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None or WORKER_EVENT not in (event.message or ""):
            continue
        workers[entry.step_key] = event.engine_event_data.metadata["Celery worker"].value
    return workers


def load_in_process(lake: Path) -> None:
    job = defs.resolve_job_def("medallion_daily")
    with pytest.MonkeyPatch.context() as mp, dg.DagsterInstance.ephemeral() as instance:
        mp.setenv("MEDALLION_DATA_DIR", str(lake))
        for day in DAYS:
            assert job.execute_in_process(partition_key=day, instance=instance).success


def test_medallion_daily_on_two_celery_workers_equals_in_process(tmp_path_factory, postgres_url, redis_url):
    root = tmp_path_factory.mktemp("celery")
    prefix = f"medallion_h10_{uuid.uuid4().hex[:10]}:"
    worker_yaml, run_config = celery_settings(root, prefix)
    broker = {CELERY_BROKER_ENV: f"{redis_url}/0", CELERY_BACKEND_ENV: f"{redis_url}/0"}
    with deployed_dagster(root, postgres_url, SAMPLE, extra_env=broker) as (deployment, processes):
        workers = [
            processes.start(name, [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                   "-y", str(worker_yaml), "-n", name, "--", "--pool=solo"], deployment.env)
            for name in WORKERS
        ]
        for name, worker in zip(WORKERS, workers, strict=True):
            wait_for(lambda n=name, w=worker: "ready." in processes.tail(n) or w.poll() is not None, 240, f"worker {name}")
            assert worker.poll() is None, processes.tail(name)

        run_ids = [
            run_to_completion(deployment.client, "medallion_daily_celery", run_config=run_config,
                              tags={"dagster/partition": day})
            for day in DAYS
        ]
        with deployment.instance() as instance:
            ran_on = worker_of_each_step(instance, run_ids[-1])
        windows = step_windows(deployment.home, run_ids[-1])
    assert [status for _, status in runs_in_postgres(postgres_url, "medallion_daily_celery")] == ["SUCCESS"] * len(DAYS)

    model = load_curated_model()
    dimensions = {f"curated__{t}" for t in ["dim_calendar", *(d.table for d in model.dimensions.values())]}
    facts = {f"curated__{t}" for t in model.facts}
    assert set(ran_on) == set(windows), "every step ran in a celery worker"
    assert {ran_on[s].split("@")[0] for s in dimensions} == set(WORKERS), f"dimensions all on one worker: {ran_on}"
    assert min(windows[s][0] for s in facts) >= max(windows[s][1] for s in dimensions)

    reference = root / "reference"
    generate_sample(reference, SAMPLE)
    load_in_process(reference)
    tables = [(layer, name) for layer, name, _ in list_delta_tables(reference)]
    assert [(layer, name) for layer, name, _ in list_delta_tables(deployment.lake)] == tables
    for layer, name in tables:
        assert comparable(deployment.lake / layer / name) == comparable(reference / layer / name), f"{layer}.{name}"
