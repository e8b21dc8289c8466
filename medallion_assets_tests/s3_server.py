"""A real S3 endpoint for tests: moto's standalone server (``moto[server]``) on a free localhost port.

``s3_server`` starts it once per session; ``s3_lake`` gives each test its own bucket and points the
standard AWS variables at the server (``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``, test credentials),
plus ``MEDALLION_LOCAL_DIR`` at a folder of the test. If moto is missing or the server does not
start, the test fails under ``CI=true`` and is skipped, with the reason, elsewhere.

conftest.py makes both fixtures available to every test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medallion_assets_tests.unavailable import fail_or_skip

# Dummy credentials moto accepts; the secret is distinctive so tests can look for leaks of it.
ACCESS_KEY = "medallion-test-access"
SECRET_KEY = "medallion-test-SECRET-7f3a9c"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server running for the whole session.

    The server runs in its own process (moto's ``ThreadedMotoServer`` there), not in a thread of
    the test process: some deltalake calls (``is_deltatable``) hold the GIL while they wait for the
    HTTP answer, which a server thread of the same interpreter could then never give."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        fail_or_skip(f"moto[server] is not installed ({exc}); `pip install -e '.[test]'`")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        if not _wait_for_port(port, process):
            fail_or_skip(f"moto S3 server did not start on 127.0.0.1:{port}: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the server has not gone within ten seconds (a CI run once saw
    the server outlive SIGTERM for 30 s at session teardown)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


_SERVER = """
import os, signal, sys, threading
from moto.server import ThreadedMotoServer
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
threading.Event().wait()
"""


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@dataclass(frozen=True)
class S3Lake:
    uri: str  # s3://<bucket>/lake, the value for MEDALLION_DATA_DIR
    bucket: str
    endpoint: str
    local_dir: Path  # MEDALLION_LOCAL_DIR: sources, locks and the serving database of the lake


def s3_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def create_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    client.create_bucket(Bucket=name)


@pytest.fixture
def s3_lake(s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Lake:
    """A fresh bucket on the session's server, with the AWS variables set for this test."""
    for name, value in s3_environment(s3_server).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"medallion-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_server, bucket)
    local = tmp_path / "lake-local"
    local.mkdir()
    monkeypatch.setenv("MEDALLION_LOCAL_DIR", str(local))
    return S3Lake(uri=f"s3://{bucket}/lake", bucket=bucket, endpoint=s3_server, local_dir=local)
