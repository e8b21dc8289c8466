"""The end-to-end webserver tests again, on the deployed instance: PostgreSQL storage from
``deploy/dagster.yaml``, ``dagster-webserver`` and ``dagster-daemon`` started as the README says.

The three tests of ``test_end_to_end_webserver.py`` (a CLI backfill, ``medallion_daily`` and
``dimensions`` through GraphQL) run here unchanged against this module's ``dagster_dev``
fixture; the last test reads the runs straight from PostgreSQL.
"""

import pytest

from medallion_assets_tests.deploy.services import deployed_dagster, runs_in_postgres
from medallion_assets_tests.test_end_to_end_webserver import (  # noqa: F401 - collected here as well
    SAMPLE,
    test_cli_backfill_runs_each_partition_once_and_equals_day_by_day,
    test_dimensions_job_runs_steps_in_parallel,
    test_medallion_daily_through_graphql_fills_every_layer,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, postgres_url):
    """What the webserver tests expect, ``(client, home, lake, env)``, served from PostgreSQL."""
    with deployed_dagster(tmp_path_factory.mktemp("pg_e2e"), postgres_url, SAMPLE) as (deployment, _):
        yield deployment.client, deployment.home, deployment.lake, deployment.env


def test_runs_are_recorded_in_postgres(dagster_dev, postgres_url):
    _, home, _, _ = dagster_dev
    assert "postgres" in (home / "dagster.yaml").read_text()
    for job, expected in (("landing_to_base", 2), ("medallion_daily", 2), ("dimensions", 1)):
        runs = runs_in_postgres(postgres_url, job)
        assert len(runs) == expected, (job, runs)
        assert {status for _, status in runs} == {"SUCCESS"}, (job, runs)
