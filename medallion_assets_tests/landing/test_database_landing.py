"""Landing assets on database sources: the URL comes from the environment through the resource
and never reaches the event log; deterministic source errors are not retried, transient ones are;
a broken landing file on the keep path fails its asset only, naming the file."""

import dagster as dg
import pytest

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import list_landing_files
from medallion_assets.landing.assets import build_landing_asset
from medallion_assets_tests.sql_servers import execute, temporary_database

SECRET = "Pa55-s3cret-never-logged"
RETRY_ONCE = {"max_retries": 1, "delay_seconds": 0, "jitter": "none"}


def database_system(**obj) -> SourceSystem:
    return SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "sql_database", "url_env": "H9_SHOP_DATABASE_URL"},
            "objects": {
                "customer": {"extract_mode": "full", "primary_key": ["customer_id"], "format": "parquet", "retry": RETRY_ONCE, **obj}
            },
        }
    )


def run(assets, tmp_path, instance, partition_key="2026-01-01"):
    return dg.materialize(
        assets,
        partition_key=partition_key,
        instance=instance,
        resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
        raise_on_error=False,
    )


def event_text(instance, run_id) -> str:
    """Every event of the run as stored (messages, errors with their causes, metadata)."""
    from dagster._serdes import serialize_value

    return "\n".join(serialize_value(record) for record in instance.all_logs(run_id))


def retries(instance, run_id) -> int:
    return sum(
        1 for r in instance.all_logs(run_id) if r.dagster_event and r.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    )


def test_extracts_from_the_database_the_environment_names(tmp_path, monkeypatch):
    system = database_system()
    with temporary_database("postgresql", tmp_path) as url:
        execute(url, "CREATE TABLE customer (customer_id bigint PRIMARY KEY, name text)", "INSERT INTO customer VALUES (1, 'Ann')")
        monkeypatch.setenv("H9_SHOP_DATABASE_URL", url)
        asset = build_landing_asset(system=system, obj=system.objects["customer"])
        with dg.DagsterInstance.ephemeral() as instance:
            result = run([asset], tmp_path, instance)
            assert result.success
            assert url not in event_text(instance, result.run_id)
    assert [f.load_type for f in list_landing_files(tmp_path, "shop", "customer")] == ["full"]


@pytest.mark.parametrize(
    ("url", "retried"),
    [
        (f"postgresql://medallion:{SECRET}@127.0.0.1:1/erp", 1),  # unreachable: transient, retried
        (f"postgresql://no_such_role_h9:{SECRET}@127.0.0.1:5432/postgres", 0),  # credentials: not retried
    ],
    ids=["unreachable", "wrong credentials"],
)
def test_a_failing_connection_never_logs_the_password(tmp_path, monkeypatch, caplog, capfd, url, retried):
    monkeypatch.setenv("H9_SHOP_DATABASE_URL", url)
    system = database_system()
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    with dg.DagsterInstance.ephemeral() as instance:
        result = run([asset], tmp_path, instance)
        assert not result.success
        logged = event_text(instance, result.run_id)
        assert "source 'shop'" in logged and "cannot connect" in logged
        assert retries(instance, result.run_id) == retried
    captured = capfd.readouterr()
    for text in (logged, caplog.text, captured.out, captured.err):
        assert SECRET not in text


def test_an_unset_url_variable_is_a_clear_error_not_retried(tmp_path, monkeypatch):
    monkeypatch.delenv("H9_SHOP_DATABASE_URL", raising=False)
    system = database_system()
    asset = build_landing_asset(system=system, obj=system.objects["customer"])
    with dg.DagsterInstance.ephemeral() as instance:
        result = run([asset], tmp_path, instance)
        assert not result.success and retries(instance, result.run_id) == 0
        assert "H9_SHOP_DATABASE_URL" in event_text(instance, result.run_id)


def test_a_broken_landing_file_on_the_keep_path_fails_its_asset_only(tmp_path, source_db):
    system = SourceSystem.model_validate(
        {
            "source": "shop",
            "connection": {"type": "duckdb", "database": "sources/shop.duckdb", "clock_query": "select now_ts from clock"},
            "objects": {
                "customer": {
                    "extract_mode": "incremental", "watermark_column": "modified_at", "primary_key": ["customer_id"],
                    "format": "csv", "read_options": {"delimiter": ",", "header": True}, "retry": RETRY_ONCE,
                },
                "customer_copy": {"table": "customer", "extract_mode": "full", "format": "parquet", "retry": RETRY_ONCE},
            },
        }
    )
    assets = [build_landing_asset(system=system, obj=obj) for obj in system.objects.values()]
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(assets, tmp_path, instance).success
        (landed,) = list_landing_files(tmp_path, "shop", "customer")
        landed.path.write_text('customer_id,name,modified_at\n1,"Ann,2026-01-01 09:00:00\n2,Bob,2026-01-01 10:00:00\n')
        result = run(assets, tmp_path, instance)
        assert not result.success
        logged = event_text(instance, result.run_id)
        assert str(landed.path) in logged and "cannot read csv landing file" in logged
        assert retries(instance, result.run_id) == 0
        kept = [e.asset_key for e in result.get_asset_materialization_events()]
        assert kept == [dg.AssetKey(["landing", "shop_customer_copy"])]
