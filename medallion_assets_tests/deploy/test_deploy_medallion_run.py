"""`medallion run` on the deployed instance (``deploy/dagster.yaml``) with the bare
``postgresql://`` URL every PostgreSQL user copies: the day runs, its run is stored in PostgreSQL."""

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from medallion_assets_tests.deploy.services import REPO, runs_in_postgres
from medallion_assets_tests.test_metadata_dir import _medallion, _shop_database

pytestmark = pytest.mark.slow


def test_a_bare_postgresql_url_runs_a_day_with_run_storage_in_postgres(shop, tmp_path, postgres_url):
    assert postgres_url.startswith("postgresql://")  # no driver named
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    day = date(2026, 3, 1)
    _shop_database(Path(os.environ["MEDALLION_DATA_DIR"]), day)
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": postgres_url}
    done = _medallion("run", "--from", str(day), "--to", str(day), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[1/1] {day}: 7 assets materialized" in done.stdout
    assert [status for _, status in runs_in_postgres(postgres_url, "medallion_daily")] == ["SUCCESS"]
