"""The Dagster instance's PostgreSQL URL: the bare form a user copies gets the psycopg2 driver
dagster-postgres needs; any other driver or scheme is one line naming the variable, never the URL."""

import pytest

from medallion_assets.common.instance_url import InstanceUrlError, check_instance_url, instance_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://dagster:secret@db-host:5432/dagster",
        "postgres://dagster:secret@db-host:5432/dagster",
        "postgresql+psycopg2://dagster:secret@db-host:5432/dagster",
        "PostgreSQL://dagster:secret@db-host:5432/dagster",
    ],
)
def test_every_postgres_spelling_becomes_psycopg2(url):
    assert instance_url(url) == "postgresql+psycopg2://dagster:secret@db-host:5432/dagster"


def test_query_parameters_are_kept():
    assert instance_url("postgresql://u@h/db?sslmode=require") == "postgresql+psycopg2://u@h/db?sslmode=require"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://dagster:secret@h/db", "names the driver 'psycopg'; dagster-postgres runs on psycopg2"),
        ("postgresql+asyncpg://dagster:secret@h/db", "names the driver 'asyncpg'"),
        ("mysql://dagster:secret@h/db", "must be a PostgreSQL URL"),
        ("dagster:secret@h/db", "is not a URL"),
    ],
)
def test_an_unusable_url_names_the_variable_and_the_form_but_not_the_secret(url, expected):
    with pytest.raises(InstanceUrlError) as error:
        instance_url(url)
    message = str(error.value)
    assert message.startswith("DAGSTER_POSTGRES_URL") and expected in message
    assert "postgresql://user:password@host:5432/database" in message
    assert "secret" not in message and "\n" not in message


def test_the_environment_gets_the_psycopg2_form_and_unset_stays_unset():
    environ = {"DAGSTER_POSTGRES_URL": "postgresql://u@h/db"}
    check_instance_url(environ)
    assert environ == {"DAGSTER_POSTGRES_URL": "postgresql+psycopg2://u@h/db"}
    empty: dict[str, str] = {}
    check_instance_url(empty)
    assert empty == {}
