"""Helpers for the deploy tests: Dagster as a service, for real. PostgreSQL instance storage
(deploy/dagster.yaml), the webserver and the daemon as separate processes, celery workers on Redis.

Each test module gets its own database ``medallion_h10_<random>`` (dropped afterwards) and its own
lake; other sessions use the same servers at the same time. With ``CI=true`` an unreachable
server fails the test; elsewhere the test is skipped and the reason printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

# The webserver test's helpers, shared rather than copied.
from medallion_assets_tests.test_end_to_end_webserver import free_port, server_up, wait_for
from medallion_assets_tests.unavailable import fail_or_skip

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("MEDALLION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDALLION_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def require_service(name: str, error: Exception | None) -> None:
    """Fail in CI, skip (saying why) elsewhere, when a server the test needs is unreachable."""
    if error is None:
        return
    fail_or_skip(f"{name} is unreachable: {type(error).__name__}: {error}".strip())


def admin_execute(statement: str) -> None:
    """Run one statement on the server's admin database (create or drop a test database)."""
    import psycopg2

    con = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(statement)
    finally:
        con.close()


@dataclass
class Deployment:
    client: DagsterGraphQLClient
    home: Path
    lake: Path
    env: dict[str, str]
    logs: Path

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


class Processes:
    """Long-running service processes, each in its own session, stopped together."""

    def __init__(self, logs: Path):
        self.logs, self.started = logs, []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((process, log))
        return process

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop(self) -> None:
        for process, _ in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            # what the service started (code servers, run processes) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            log.close()


def generate_sample(lake: Path, sample: list[str]) -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "medallion_assets.cli", "--data-dir", str(lake), "sample", "generate", *sample],
        capture_output=True, text=True, timeout=300,
    )
    assert generated.returncode == 0, generated.stderr


@contextlib.contextmanager
def deployed_dagster(
    root: Path, postgres_url: str, sample: list[str], extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Deployment, Processes]]:
    """``deploy/dagster.yaml`` in a fresh DAGSTER_HOME, webserver and daemon started as docs/operations.md
    says, a generated sample lake; the test process sees the same instance."""
    home, lake, logs = root / "dagster_home", root / "lake", root / "logs"
    for folder in (home, logs):
        folder.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    generate_sample(lake, sample)
    instance_url = postgres_url  # the bare postgresql:// a user copies (deploy/dagster.yaml names the driver)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MEDALLION_DATA_DIR": str(lake),
        "DAGSTER_POSTGRES_URL": instance_url,
        # the test hosts are shared and busy: give code-server calls 5 minutes, not 1
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    # the deploy step that creates every table pool once (see docs/operations.md, "Deploy")
    pools = subprocess.run(
        [sys.executable, "-m", "medallion_assets.cli", "pools", "init"], env=env, capture_output=True, text=True, timeout=600
    )
    assert pools.returncode == 0 and "limit 1" in pools.stdout, pools.stdout + pools.stderr
    processes = Processes(logs)
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_POSTGRES_URL", instance_url)  # so the test reads the same instance
        try:
            webserver = processes.start(
                "webserver",
                [str(BIN / "dagster-webserver"), "-w", "deploy/workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                env,
            )
            daemon = processes.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "deploy/workspace.yaml"], env)
            wait_for(lambda: server_up(port) or webserver.poll() is not None, 240, "the webserver")
            assert webserver.poll() is None, processes.tail("webserver")
            assert daemon.poll() is None, processes.tail("daemon")
            client = DagsterGraphQLClient("127.0.0.1", port_number=port)
            yield Deployment(client=client, home=home, lake=lake, env=env, logs=logs), processes
        finally:
            processes.stop()


def runs_in_postgres(postgres_url: str, job: str) -> list[tuple[str, str]]:
    """(run_id, status) of ``job`` read straight from the instance's PostgreSQL tables."""
    import psycopg2

    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs WHERE pipeline_name = %s ORDER BY create_timestamp", (job,))
            return list(cur.fetchall())
    finally:
        con.close()
