"""Benchmark: Dagster's own overhead on one partition of ``medallion_daily``.

    .venv/bin/python benchmarks/orchestration.py [--days 2] [--customers 2000] [--order-lines 20000]

Generates a sample in a temporary data root, copies it once per variant, and runs the first
landed day's partition of ``medallion_daily`` on each copy with a fresh temporary instance:

- ``in process``: ``execute_in_process``, every step in this process (the floor);
- ``multiprocess``: ``dg.execute_job`` of the code location's reconstructable job with the job's
  own run config for the partition: the job's executor as the UI and the daemon run it (one
  process per step), in this process;
- ``launched``: the same run launched as the UI and the daemon launch it: created from the code
  location's job as its code server reports it and handed to the instance's run launcher, which
  starts a run worker process that executes it (``orchestration/launch.py``, what ``medallion
  run`` uses). The code server is started before the clock, as it is always up under the UI;
- ``multiprocess spawn`` (``--compare-spawn``): the same with ``start_method: spawn``, every step
  a fresh interpreter that imports the project again.

Prints wall time, the ratio to the in-process floor, and the steps, materializations and check
evaluations of each run. Every run must succeed, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from medallion_assets.engine.storage.paths import DATA_DIR_ENV
from medallion_assets.orchestration.jobs import multiprocess_run_config
from medallion_assets.sample import generate_sample

CODE_LOCATION_MODULE = "medallion_assets.definitions"
JOB = "medallion_daily"


@dataclass(frozen=True)
class Timing:
    variant: str
    seconds: float
    steps: int
    materializations: int
    checks: int


def _counts(events) -> tuple[int, int, int]:
    types = [event.event_type_value for event in events]
    return types.count("STEP_START"), types.count("ASSET_MATERIALIZATION"), types.count("ASSET_CHECK_EVALUATION")


def run_in_process(*, data_dir: Path, partition: str) -> Timing:
    from medallion_assets.definitions import defs

    os.environ[DATA_DIR_ENV] = str(data_dir)
    job = defs.resolve_job_def(JOB)
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(tempdir=home) as instance:
        started = time.perf_counter()
        result = job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
        return Timing("in process", seconds, *_counts(result.all_events))


def run_multiprocess(*, data_dir: Path, partition: str, variant: str, run_config: dict | None) -> Timing:
    """``execute_job`` of the job as the code location defines it; ``run_config=None`` takes the
    job's run config for the partition, as the launchpad, schedules and the daemon do."""
    from medallion_assets.definitions import defs

    os.environ[DATA_DIR_ENV] = str(data_dir)
    job = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, "defs").get_reconstructable_job(JOB)
    if run_config is None:
        run_config = defs.resolve_job_def(JOB).partitioned_config.get_run_config_for_partition_key(partition)
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(tempdir=home) as instance:
        started = time.perf_counter()
        with dg.execute_job(job, instance=instance, run_config=run_config, tags={"dagster/partition": partition}) as result:
            seconds = time.perf_counter() - started
            if not result.success:
                raise SystemExit(f"{variant}: the run failed")
            return Timing(variant, seconds, *_counts(result.all_events))


def run_launched(*, data_dir: Path, partition: str) -> Timing:
    from medallion_assets.definitions import defs
    from medallion_assets.orchestration.launch import code_location_launcher

    os.environ[DATA_DIR_ENV] = str(data_dir)
    run_config = defs.resolve_job_def(JOB).partitioned_config.get_run_config_for_partition_key(partition)
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(tempdir=home) as instance:
        with code_location_launcher(instance) as launch:
            started = time.perf_counter()
            finished = launch(JOB, run_config=run_config, tags={"dagster/partition": partition})
            seconds = time.perf_counter() - started
        if not finished.success:
            raise SystemExit("launched: the run failed")
        events = [entry.dagster_event for entry in instance.all_logs(finished.run_id) if entry.dagster_event]
        return Timing("launched", seconds, *_counts(events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--order-lines", type=int, default=20_000)
    parser.add_argument("--compare-spawn", action="store_true", help="also run with start_method spawn")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medallion-orchestration-") as tmp:
        sample = Path(tmp) / "sample"
        days = generate_sample(
            sample, days=args.days, customers=args.customers, order_lines=args.order_lines, log=lambda _: None
        )
        partition = days[0].isoformat()

        def fresh_copy(name: str) -> Path:
            target = Path(tmp) / name
            shutil.copytree(sample, target)
            return target

        timings = [run_in_process(data_dir=fresh_copy("in_process"), partition=partition)]
        timings.append(
            run_multiprocess(data_dir=fresh_copy("multiprocess"), partition=partition, variant="multiprocess", run_config=None)
        )
        timings.append(run_launched(data_dir=fresh_copy("launched"), partition=partition))
        if args.compare_spawn:
            spawn = multiprocess_run_config(start_method="spawn")
            timings.append(
                run_multiprocess(
                    data_dir=fresh_copy("spawn"), partition=partition, variant="multiprocess spawn", run_config=spawn
                )
            )

    floor = timings[0].seconds
    print(
        f"medallion_daily, partition {partition}, sample of {args.order_lines:,} order lines over {args.days} days; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, dagster {dg.__version__}"
    )
    print(f"{'variant':<22} {'wall s':>8} {'x in-process':>13} {'steps':>6} {'assets':>7} {'checks':>7}")
    for t in timings:
        print(f"{t.variant:<22} {t.seconds:>8.1f} {t.seconds / floor:>13.2f} {t.steps:>6} {t.materializations:>7} {t.checks:>7}")


if __name__ == "__main__":
    main()
