"""Crash safety: SIGKILL a landing extract, a base load or a curated load at random moments.

A worker subprocess (``crash_worker.py``) does one layer's work over a copy of a small sample; the
parent kills it at a seeded random fraction of the measured uninterrupted duration, then checks:

1. every Delta table (base/, base/_state/, curated/) opens and its latest version reads fully,
   and no table went backwards or vanished (previous version or a newer one, nothing else);
2. every landing file a reader lists is complete (same rows as the clean extract of that name),
   and no clean landing file is missing (dot-prefixed temp files may remain: readers skip them);
3. re-running the work to completion gives exactly the tables of an uninterrupted run, ignoring
   only the load-time stamps ``lh_created_date`` / ``lh_modified_date`` (the only columns that
   differ between two clean runs).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medallion_assets.sample import generate_sample
from medallion_assets_tests.lake_contents import LOAD_STAMPS, landing_contents
from medallion_assets_tests.lake_contents import rows as sorted_rows

pytestmark = pytest.mark.slow  # 20 SIGKILL trials in real processes

WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = {"base": 8, "curated": 7, "landing": 5}
SEED = 20260101


def _kill_fractions() -> list[tuple[str, int, float]]:
    """Deterministic kill moments, as fractions of the layer's uninterrupted duration."""
    trials = []
    for layer, count in KILLS.items():
        rng = random.Random(f"{SEED}-{layer}")
        trials += [(layer, i, round(rng.uniform(0.02, 0.95), 3)) for i in range(count)]
    return trials


def _start(layer: str, data_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), layer, str(data_dir)], stdout=subprocess.PIPE, stderr=err, text=True
        )
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.wait()
        pytest.fail(f"worker {layer} did not start (said {line!r}): {log.read_text()[-3000:]}")
    return proc


def run_worker(layer: str, data_dir: Path) -> float:
    """Run a layer's work to completion; returns the seconds from 'ready' to exit."""
    log = data_dir.parent / f"{data_dir.name}-{layer}.log"
    proc = _start(layer, data_dir, log)
    began = time.monotonic()
    out, _ = proc.communicate()
    elapsed = time.monotonic() - began
    assert proc.returncode == 0 and "done" in out, (
        f"worker {layer} failed on {data_dir} (exit {proc.returncode}, stdout {out!r}): {log.read_text()[-3000:]}"
    )
    return elapsed


def kill_worker(layer: str, data_dir: Path, delay: float) -> bool:
    """Start the worker, SIGKILL it ``delay`` seconds after it is ready; False if it finished first."""
    log = data_dir.parent / f"{data_dir.name}-{layer}.log"
    proc = _start(layer, data_dir, log)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    if proc.returncode == 0:
        return False  # it finished before the signal landed: no kill point, the caller retries earlier
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    return True


# --- inspection ----------------------------------------------------------------------------


def delta_dirs(data_dir: Path) -> dict[str, Path]:
    """Every folder with a ``_delta_log`` under base/, base/_state/ and curated/."""
    found = {}
    for layer in ("base", "base/_state", "curated"):
        folder = data_dir / layer
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if (entry / "_delta_log").is_dir():
                found[f"{layer}/{entry.name}"] = entry
    return found


def versions(data_dir: Path) -> dict[str, int]:
    return {name: DeltaTable(str(path)).version() for name, path in delta_dirs(data_dir).items() if DeltaTable.is_deltatable(str(path))}


def check_delta_tables(data_dir: Path, before: dict[str, int]) -> None:
    tables = delta_dirs(data_dir)
    for name, version in before.items():
        assert name in tables and DeltaTable.is_deltatable(str(tables[name])), f"{name} (version {version}) vanished"
    for name, path in tables.items():
        if not DeltaTable.is_deltatable(str(path)):
            # A first write killed before its first commit: no version exists, nothing to read.
            assert name not in before
            assert not list((path / "_delta_log").glob("*.json")), f"{name}: commit files but no readable table"
            continue
        dt = DeltaTable(str(path))
        assert dt.version() >= before.get(name, 0), f"{name} went back from {before[name]} to {dt.version()}"
        dt.to_pyarrow_table()  # raises if a file the latest version lists is missing or truncated






def table_contents(data_dir: Path, prefixes: tuple[str, ...] = ("base", "curated")) -> dict[str, list[tuple]]:
    out = {}
    for name, path in delta_dirs(data_dir).items():
        if name.startswith(prefixes):
            out[name] = sorted_rows(DeltaTable(str(path)).to_pyarrow_table(), LOAD_STAMPS)
    return out


def assert_same_tables(actual: Path, reference: Path, prefixes: tuple[str, ...] = ("base", "curated")) -> None:
    got, want = table_contents(actual, prefixes), table_contents(reference, prefixes)
    assert sorted(got) == sorted(want)
    different = [name for name in want if got[name] != want[name]]
    assert not different, f"tables differ from an uninterrupted run: {different}"


# --- fixture -------------------------------------------------------------------------------


@dataclass
class Lake:
    root: Path
    sample: Path  # generated sample: source database and landing files, no tables
    day2: Path  # base loaded for the first two days
    based: Path  # base loaded for all three days
    reference: Path  # base and curated, uninterrupted
    landing: dict[str, list[tuple]]  # the clean landing files' rows
    duration: dict[str, float]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("crash")
    sample = root / "sample"
    sample.mkdir()
    generate_sample(sample, seed=9, days=3, customers=300, order_lines=3000, log=lambda m: None)
    work = root / "reference"
    shutil.copytree(sample, work)
    first = run_worker("base_but_last", work)
    shutil.copytree(work, root / "day2")
    last = run_worker("base_last", work)
    shutil.copytree(work, root / "based")
    curated = run_worker("curated", work)
    scratch = root / "scratch"
    shutil.copytree(root / "day2", scratch)
    landing = run_worker("landing", scratch)
    clean_landing = landing_contents(sample)
    assert landing_contents(scratch) == clean_landing, "a forced re-extract of the last day must land the same files"
    shutil.rmtree(scratch)
    return Lake(
        root=root,
        sample=sample,
        day2=root / "day2",
        based=root / "based",
        reference=work,
        landing=clean_landing,
        duration={"base": first + last, "curated": curated, "landing": landing},
    )


# --- trials --------------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "index", "fraction"), _kill_fractions(), ids=lambda v: str(v))
def test_kill_then_rerun_equals_clean_run(lake: Lake, layer: str, index: int, fraction: float) -> None:
    trial = lake.root / f"trial-{layer}-{index}"
    start_from = {"base": lake.sample, "curated": lake.based, "landing": lake.day2}[layer]
    delay = fraction * lake.duration[layer]
    for _ in range(4):  # a busy machine may run the worker faster than measured: kill earlier
        shutil.rmtree(trial, ignore_errors=True)
        shutil.copytree(start_from, trial)
        before = versions(trial)
        if kill_worker(layer, trial, delay):
            print(f"{layer}: killed {delay:.2f}s into the work", file=sys.stderr)
            break
        delay /= 2

    check_delta_tables(trial, before)
    assert landing_contents(trial) == lake.landing, "a landing file is partial, missing or extra after the kill"
    if layer == "landing":
        # Base must read one consistent extract from what the killed re-extract left behind ...
        run_worker("base_last", trial)
        assert_same_tables(trial, lake.reference, prefixes=("base",))
        # ... and re-running the extract lands exactly the clean files.
        run_worker("landing", trial)
        assert landing_contents(trial) == lake.landing
    else:
        run_worker(layer, trial)
        assert_same_tables(trial, lake.reference, prefixes=("base", "curated") if layer == "curated" else ("base",))
    shutil.rmtree(trial)
