"""Real database servers for tests: a fresh database per test, dropped afterwards.

PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306, user root) run on the
development and CI machines. Each test gets its own ``medallion_h9_<random>`` database, so tests
running at the same time never meet. Unreachable server: the test fails under ``CI=true`` and is
skipped, with the reason, elsewhere. SQLite needs no server.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from medallion_assets_tests.unavailable import fail_or_skip

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
KINDS = ("postgresql", "mariadb", "sqlite")


def _unreachable(kind: str, exc: Exception) -> None:
    fail_or_skip(f"{kind} server not reachable: {exc}")


@contextlib.contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new, empty database of ``kind``; drop it afterwards."""
    name = f"medallion_h9_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / (name + '.sqlite')}"
    elif kind == "postgresql":
        import psycopg

        try:
            admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            _unreachable(kind, exc)
        with admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield f"postgresql://postgres@127.0.0.1:5432/{name}"
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif kind == "mariadb":
        import pymysql

        try:
            admin = pymysql.connect(**MARIADB, autocommit=True, connect_timeout=5)
        except pymysql.err.OperationalError as exc:
            _unreachable(kind, exc)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}`")
            try:
                yield f"mysql://root@127.0.0.1:3306/{name}"
            finally:
                with admin.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()
    else:
        raise ValueError(kind)


def execute(url: str, *statements: str) -> None:
    """Run statements against the database at ``url`` (through SQLAlchemy, committed)."""
    import sqlalchemy as sa

    from medallion_assets.engine.landing.database import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as con:
            for statement in statements:
                con.exec_driver_sql(statement)
    finally:
        engine.dispose()
