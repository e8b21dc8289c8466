"""The Dagster instance's PostgreSQL storage, from the URL a PostgreSQL user copies.

``deploy/dagster.yaml`` names :class:`PostgresStorage`: dagster-postgres' own storage, given the
psycopg2 form of whatever PostgreSQL URL ``DAGSTER_POSTGRES_URL`` holds
(:func:`medallion_assets.common.instance_url.instance_url`), in the webserver, the daemon, every
run and every worker alike.
"""

from __future__ import annotations

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from medallion_assets.common.instance_url import instance_url


class PostgresStorage(DagsterPostgresStorage):
    """dagster-postgres' storage (runs, event logs, schedules) with the URL in its psycopg2 form;
    configured exactly as ``storage: postgres:`` (``postgres_url`` or ``postgres_db``)."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PostgresStorage:  # ty: ignore[invalid-method-override]
        return cls(
            inst_data=inst_data,
            postgres_url=instance_url(pg_url_from_config(config_value)),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
