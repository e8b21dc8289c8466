"""Take the README's screenshot of the asset graph: run the demo on a small temporary sample,
start `dagster dev` on a free localhost port, open the global asset lineage page in headless
Chromium and save a PNG.

Needs Debian's Chromium (`apt-get install chromium`) and the Playwright driver from PyPI
(`.venv/bin/pip install playwright`; it drives the system Chromium, nothing is downloaded):

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


def capture(chromium: str, url: str, out: Path, size: str) -> None:
    from playwright.sync_api import sync_playwright

    width, height = (int(v) for v in size.split(","))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.wait_for_timeout(6000)
        welcome = page.get_by_role("button", name="Skip")  # the first-visit community dialog
        if welcome.count():
            welcome.click()
            page.wait_for_timeout(1000)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "asset-graph.png")
    parser.add_argument("--path", default="/asset-groups", help="UI page to capture")
    parser.add_argument("--size", default="1400,800")
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
        capture(chromium, f"http://127.0.0.1:{port}{args.path}", args.out, args.size)
        print(f"saved {args.out}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
