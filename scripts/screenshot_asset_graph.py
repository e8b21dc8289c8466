"""Take the README's screenshot of the asset graph: start `dagster dev` on a free localhost port
against a small temporary sample, open the global asset lineage page in headless Chromium (Debian's
`chromium` package: `apt-get install chromium`) and save a PNG.

    .venv/bin/python scripts/screenshot_asset_graph.py [--out docs/asset-graph.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit("dagster dev did not come up")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "asset-graph.png")
    parser.add_argument("--path", default="/asset-groups", help="UI page to capture")
    parser.add_argument("--size", default="1600,1000")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("headless Chromium not found: apt-get install chromium")
    work = Path(tempfile.mkdtemp(prefix="medallion-shot-"))
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDALLION_DATA_DIR": str(work / "lake"), "PYTHONWARNINGS": "ignore::FutureWarning"}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "medallion"), "demo", "--days", "2", "--customers", "200", "--order-lines", "2000"], env=env, check=True)
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_until_up(port)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={work / 'chrome'}", f"--window-size={args.size}", "--hide-scrollbars",
                "--virtual-time-budget=20000", f"--screenshot={args.out}", f"http://127.0.0.1:{port}{args.path}",
            ],
            check=True, timeout=180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        print(f"saved {args.out}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
