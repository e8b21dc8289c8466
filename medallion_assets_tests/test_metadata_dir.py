"""A team's own metadata folder (MEDALLION_METADATA_DIR): the sample is absent, mistakes that span
files fail the code location, switched-off objects take their dependents with them, and
`medallion run` materializes every layer of that folder's sources."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from deltalake import DeltaTable

from medallion_assets.definitions import build_definitions
from medallion_assets.engine.catalog import load_project_metadata
from medallion_assets.engine.metadata import MetadataError
from medallion_assets.engine.project import first_landing_day

REPO = Path(__file__).resolve().parents[1]


def _keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def test_a_team_folder_shows_its_own_assets_and_never_the_sample(shop):
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    assert _keys(defs) == {
        "landing/shop_item",
        "landing/shop_sale",
        "base/shop_item",
        "base/shop_sale",
        "curated/dim_calendar",
        "curated/dim_item",
        "curated/fact_sale",
    }
    daily = defs.resolve_job_def("medallion_daily").partitions_def
    assert daily.get_first_partition_key() == "2026-03-01"  # project.yaml of the team's folder


def test_unset_means_the_shipped_sample(monkeypatch):
    monkeypatch.delenv("MEDALLION_METADATA_DIR", raising=False)
    assert "landing/erp_customer" in _keys(build_definitions())


def test_a_missing_folder_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDALLION_METADATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MetadataError, match="MEDALLION_METADATA_DIR=.*nowhere.*does not exist"):
        build_definitions()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_include_false_leaves_out_everything_that_depends_on_it(shop):
    _edit(shop / "sources" / "shop.yaml", "extract_mode: full\n", "extract_mode: full\n    include: false\n")
    metadata = load_project_metadata()
    assert set(metadata.left_out) == {"shop_item", "dim_item", "fact_sale"}
    assert "include: false" in metadata.left_out["shop_item"]
    assert "reads base.shop_item, which is left out" in metadata.left_out["fact_sale"]
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)  # the landing sensor selects only what exists
    assert _keys(defs) == {"landing/shop_sale", "base/shop_sale", "curated/dim_calendar"}


def test_a_base_table_on_an_undeclared_landing_object_names_file_table_and_object(shop):
    _edit(shop / "base" / "shop.yaml", "tables:\n", "tables:\n  ghost:\n    write_behaviour: append\n    format: csv\n")
    with pytest.raises(MetadataError) as error:
        build_definitions()
    message = str(error.value)
    assert str(shop / "base" / "shop.yaml") in message
    assert "table 'ghost'" in message and "'shop/ghost' is not declared" in message


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("fact_sale.sql", "FROM base.shop_sale", "FROM base.shop_sael", "reads base.shop_sael, which is not a base table"),
        ("fact_sale.sql", "item_id AS item_key", "item_id AS itm_key", "column 'itm_key' looks like a dimension key"),
        ("model.yaml", "degenerate_keys: [sale_key]", "degenerate_keys: []", "column 'sale_key' looks like a dimension key"),
    ],
    ids=["misspelled-base-table", "key-without-dimension", "missing-degenerate-key"],
)
def test_curated_mistakes_fail_when_the_code_location_loads(shop, file, old, new, expected):
    _edit(shop / "curated" / file, old, new)
    with pytest.raises(MetadataError) as error:
        build_definitions()
    assert expected in str(error.value)
    assert str(shop / "curated" / "fact_sale.sql") in str(error.value)


def test_dagster_definitions_validate_fails_naming_the_file(shop):
    _edit(shop / "curated" / "fact_sale.sql", "FROM base.shop_sale", "FROM base.shop_sael")
    validated = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "medallion_assets.definitions"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=dict(os.environ),
    )
    assert validated.returncode != 0
    output = validated.stdout + validated.stderr
    assert "fact_sale.sql" in output and "base.shop_sael" in output


def test_first_landing_day_is_the_earliest_visible_file(tmp_path):
    early = tmp_path / "landing" / "shop" / "item" / "full" / "2026" / "02" / "27"
    early.mkdir(parents=True)
    (early / ".item_full_20260227T220000.csv").write_text("in flight")  # temporary files do not count
    later = tmp_path / "landing" / "shop" / "sale" / "delta" / "2026" / "03" / "02"
    later.mkdir(parents=True)
    (later / "sale_delta_20260302T220000.parquet").write_text("x")
    assert first_landing_day(tmp_path, sources=["shop"]) == date(2026, 3, 2)
    assert first_landing_day(tmp_path, sources=["erp"]) is None


def _shop_database(lake: Path, day: date) -> Path:
    path = lake / "sources" / "shop.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create table item(item_id bigint, name varchar, price decimal(10,2), modified_at timestamp)")
    con.execute(
        "create table sale(sale_id bigint, item_id bigint, sold_on date, quantity int, amount decimal(10,2), modified_at timestamp)"
    )
    con.execute("create table clock(now_ts timestamp)")
    con.execute(f"insert into item values (1, 'Tea', 2.50, '{day} 08:00'), (2, 'Cake', 4.00, '{day} 08:00')")
    con.execute(
        f"insert into sale values (10, 1, '{day}', 2, 5.00, '{day} 09:00'), (11, 2, '{day}', 1, 4.00, '{day} 10:00')"
    )
    con.execute(f"insert into clock values ('{day} 22:00')")
    con.close()
    return path


def _medallion(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medallion_assets.cli", *args], capture_output=True, text=True, timeout=3600, env=env
    )


@pytest.mark.slow
def test_medallion_run_materializes_every_layer_of_a_team_source(shop, tmp_path, monkeypatch):
    lake = Path(os.environ["MEDALLION_DATA_DIR"])
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    database = _shop_database(lake, day1)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}

    first = _medallion("run", "--from", str(day1), "--to", str(day1), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"[1/1] {day1}: 7 assets materialized" in first.stdout
    assert "curated.fact_sale" in first.stdout and "erp" not in first.stdout

    con = duckdb.connect(str(database))  # the next day: Tea gets dearer, one more sale
    con.execute(f"update item set price = 3.00, modified_at = '{day2} 07:00' where item_id = 1")
    con.execute(f"insert into sale values (12, 1, '{day2}', 1, 3.00, '{day2} 09:00')")
    con.execute(f"update clock set now_ts = '{day2} 22:00'")
    con.close()
    second = _medallion("run", "--from", str(day2), "--to", str(day2), env=env)
    assert second.returncode == 0, second.stdout + second.stderr

    facts = DeltaTable(str(lake / "curated" / "fact_sale")).to_pyarrow_table().to_pylist()
    items = DeltaTable(str(lake / "curated" / "dim_item")).to_pyarrow_table().to_pylist()
    tea = {(r["price"], r["item_id"]) for r in items if r["item_key"] == 1}
    assert len(tea) == 2  # an id per version
    ids = {float(price): item_id for price, item_id in tea}
    by_sale = {r["sale_key"]: r for r in facts}
    assert set(by_sale) == {10, 11, 12}
    assert by_sale[10]["item_id"] == ids[2.5] and by_sale[12]["item_id"] == ids[3.0]  # the version of the fact's day

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted(r.tags.get("dagster/partition") for r in runs) == [str(day1), str(day2)]
        # Launched as the daemon launches runs: each carries its code location (the UI's Overview
        # timeline shows only such runs) and ran its steps on the multiprocess executor.
        assert {r.remote_job_origin.location_name for r in runs if r.remote_job_origin} == {"medallion_assets"}
        assert all(r.remote_job_origin for r in runs)
        assert all("multiprocess" in r.run_config["execution"]["config"] for r in runs)
        event = instance.get_latest_materialization_event(dg.AssetKey(["base", "shop_item"]))
        schema = event.asset_materialization.metadata["dagster/column_schema"].value
        described = {c.name: c.description for c in schema.columns}
        assert described["price"] == "List price in euros."
        _assert_column_lineage(instance)


def _lineage(instance: dg.DagsterInstance, *key: str) -> dict[str, set[tuple[str, str]]]:
    event = instance.get_latest_materialization_event(dg.AssetKey(list(key)))
    lineage = event.asset_materialization.metadata["dagster/column_lineage"].value
    return {c: {(d.asset_key.to_user_string(), d.column_name) for d in deps} for c, deps in lineage.deps_by_column.items()}


def _assert_column_lineage(instance: dg.DagsterInstance) -> None:
    """Every base column to its landing column, every curated column to the base columns its SQL
    computes it from, the mapped keys also to the dimension they resolve against."""
    item = _lineage(instance, "base", "shop_item")
    assert item["price"] == {("landing/shop_item", "price")} and item["lh_valid_from"] == set()
    dim = _lineage(instance, "curated", "dim_item")
    assert dim["item_name"] == {("base/shop_item", "name")} and dim["item_id"] == set()
    fact = _lineage(instance, "curated", "fact_sale")
    assert fact["amount"] == {("base/shop_sale", "amount")}
    assert fact["list_amount"] == {("base/shop_item", "price"), ("base/shop_sale", "quantity")}  # through the join
    assert fact["item_id"] == {("base/shop_sale", "item_id"), ("curated/dim_item", "item_id")}
    assert fact["calendar_sold_key"] == {("base/shop_sale", "sold_on"), ("curated/dim_calendar", "calendar_key")}


def test_run_refuses_a_reversed_range(shop):
    done = _medallion("run", "--from", "2026-03-05", "--to", "2026-03-01", env=dict(os.environ))
    assert done.returncode == 2 and "--to 2026-03-01 is before --from 2026-03-05" in done.stderr


@pytest.mark.slow
def test_medallion_run_reports_the_failed_step_and_stops(shop, tmp_path):
    """A day whose run fails (the source has no `sale` table) ends the command with exit code 1,
    naming the failed step and the run; later days are not run."""
    lake = Path(os.environ["MEDALLION_DATA_DIR"])
    database = _shop_database(lake, date(2026, 3, 1))
    con = duckdb.connect(str(database))
    con.execute("drop table sale")
    con.close()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    done = _medallion("run", "--from", "2026-03-01", "--to", "2026-03-02", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[1/2] 2026-03-01:" in done.stdout and "FAILED at landing__shop_sale" in done.stdout
    assert "stopped: see run" in done.stdout and "[2/2]" not in done.stdout
