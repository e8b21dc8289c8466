"""Dagster resources. The data root comes from here, never from the working directory."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import resolve_data_dir


class LakehouseResource(dg.ConfigurableResource):
    """Where the lakehouse lives.

    ``data_dir`` may be set explicitly (for example ``dg.EnvVar("MEDALLION_DATA_DIR")`` or a
    test's ``tmp_path``); left empty it resolves at run time to ``$MEDALLION_DATA_DIR`` or the
    checkout's ``data/`` folder, so an unset variable is a default, not an error.
    """

    data_dir: str = ""

    @property
    def root(self) -> Path:
        return resolve_data_dir(self.data_dir or None)

    def database_url(self, system: SourceSystem) -> str | None:
        """The SQL database URL of a source, read at run time through Dagster's ``EnvVar`` from
        the variable its metadata names (``connection.url_env``). A secret: never log it."""
        from medallion_assets.engine.landing.extract import database_url_for

        return database_url_for(system, lambda name: dg.EnvVar(name).get_value())
