"""Fixtures of the deploy tests: a fresh PostgreSQL database per module, a reachable Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from medallion_assets_tests.deploy.services import ADMIN_URL, REDIS_URL, admin_execute, require_service


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database for this module's Dagster instance, dropped afterwards."""
    name = f"medallion_h10_{uuid.uuid4().hex[:12]}"
    try:
        admin_execute(f"CREATE DATABASE {name}")
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unreachable"
        require_service(f"PostgreSQL at {ADMIN_URL}", exc)
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001
        require_service(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


