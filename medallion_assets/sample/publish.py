"""Where the sample ERP lives: a DuckDB file (the default) or a SQL database (PostgreSQL).

The simulation always runs in the DuckDB working file under the data root. When the ERP lives
in a SQL database (``ERP_DATABASE_URL``), every simulated day is published there: all tables
replaced in one transaction, with the same column types, so an extract sees the previous day or
the new one, never half of it. Both targets hold the same data for the same seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from medallion_assets.engine.landing.database import is_postgres, libpq_uri, redact
from medallion_assets.engine.landing.extract import arrow_reader


class ErpTarget:
    """The DuckDB working file is the ERP: nothing to publish."""

    database_url: str | None = None

    def publish(self, working: Path) -> None:
        return None


class SqlDatabaseTarget(ErpTarget):
    """The ERP is the PostgreSQL database at ``url``; its tables mirror the working file."""

    def __init__(self, url: str):
        if not is_postgres(url):
            raise ValueError("the sample ERP can be written to PostgreSQL only (ERP_DATABASE_URL=postgresql://...)")
        self.database_url = url

    def publish(self, working: Path) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        source = duckdb.connect(str(working), read_only=True)
        try:
            tables = source.execute("SELECT table_name, sql FROM duckdb_tables() ORDER BY table_name").fetchall()
            with adbc.connect(libpq_uri(self.database_url)) as target:  # one transaction, committed at the end
                cursor = target.cursor()
                for name, ddl in tables:
                    cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
                    cursor.execute(_postgres_ddl(ddl))
                    cursor.adbc_ingest(name, arrow_reader(source.table(name)), mode="append")
                cursor.close()
                target.commit()
        except Exception as exc:  # noqa: BLE001 - any driver error; the URL must not leak
            message = redact(f"cannot write the sample ERP to {self.database_url}: {type(exc).__name__}: {exc}", self.database_url)
            raise RuntimeError(message) from None
        finally:
            source.close()


def _postgres_ddl(ddl: str) -> str:
    """DuckDB's CREATE TABLE in PostgreSQL's words (the same types, so extracts land alike)."""
    return re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", ddl.rstrip(";"))


def erp_target(url: str | None) -> ErpTarget:
    return SqlDatabaseTarget(url) if url else ErpTarget()
