"""The PostgreSQL URL of the Dagster instance, in the form dagster-postgres needs.

dagster-postgres runs on psycopg2, but SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3,
whose server-side parameters break dagster-postgres deep inside a run (``NOTIFY`` fails near
``$1``). The instance's storage (:mod:`medallion_assets.common.instance_storage`) and the
``medallion`` commands both go through :func:`instance_url`. No message carries the URL itself:
it may hold a password. (No Dagster import here: every command reads this.)
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

INSTANCE_URL_ENV = "DAGSTER_POSTGRES_URL"
_PSYCOPG2 = "postgresql+psycopg2"
_PLAIN = ("postgresql", "postgres", _PSYCOPG2)
_FORM = "postgresql://user:password@host:5432/database"


class InstanceUrlError(ValueError):
    """A run-storage URL dagster-postgres cannot use; the message names the variable and the form."""


def instance_url(url: str, *, env: str = INSTANCE_URL_ENV) -> str:
    """``url`` with the psycopg2 driver dagster-postgres needs (a bare ``postgresql://`` or
    ``postgres://`` gets it); any other scheme or driver is an :class:`InstanceUrlError`."""
    scheme, separator, rest = url.strip().partition("://")
    if not separator or not rest:
        raise InstanceUrlError(f"{env} is not a URL: write {_FORM}")
    scheme = scheme.lower()
    if scheme in _PLAIN:
        return f"{_PSYCOPG2}://{rest}"
    if scheme.startswith(("postgresql+", "postgres+")):
        driver = scheme.split("+", 1)[1]
        raise InstanceUrlError(
            f"{env} names the driver {driver!r}; dagster-postgres runs on psycopg2: write {_FORM} (or postgresql+psycopg2://...)"
        )
    raise InstanceUrlError(f"{env} must be a PostgreSQL URL ({_FORM}), not {scheme}://...")


def check_instance_url(environ: MutableMapping[str, str] | None = None) -> None:
    """Puts the psycopg2 form of ``DAGSTER_POSTGRES_URL`` (when set) back in the environment, so
    the instance, the code server and every run process this command starts read it."""
    environ = os.environ if environ is None else environ
    value = environ.get(INSTANCE_URL_ENV)
    if value:
        environ[INSTANCE_URL_ENV] = instance_url(value)
