"""The Dagster layer: definitions from the sample model, a full materialization, partitions."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.curated.definitions import build_curated_definitions
from medallion_assets.engine.curated.model import load_curated_model
from medallion_assets.engine.metadata import MetadataError

defs = build_curated_definitions()


def _assets(definitions: dg.Definitions) -> list[dg.AssetsDefinition]:
    return list(definitions.assets)


def test_sample_definitions_have_keys_groups_and_inferred_deps() -> None:
    by_key = {a.key.to_user_string(): a for a in _assets(defs)}
    assert set(by_key) == {
        "curated/dim_calendar", "curated/dim_customer", "curated/dim_product", "curated/dim_employee",
        "curated/fact_sales", "curated/fact_budget", "curated/bridge_customer_employee",
    }
    for asset in by_key.values():
        assert asset.group_names_by_key[asset.key] == "curated"
        assert asset.specs_by_key[asset.key].tags["layer"] == "curated"
        assert set(asset.specs_by_key[asset.key].kinds) == {"deltalake", "duckdb"}
    assert dg.AssetKey(["base", "erp_customer"]) in by_key["curated/dim_customer"].dependency_keys
    fact_deps = by_key["curated/fact_sales"].dependency_keys
    assert dg.AssetKey(["base", "erp_sales_order_line"]) in fact_deps
    assert dg.AssetKey(["curated", "dim_customer"]) in fact_deps
    assert dg.AssetKey(["curated", "dim_calendar"]) in fact_deps


def test_materializing_the_sample_model_writes_tables_metadata_and_views(curated_base: Path) -> None:
    result = dg.materialize(
        _assets(defs),
        resources={"lakehouse": LakehouseResource(data_dir=str(curated_base))},
    )
    assert result.success
    materializations = {
        e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    sales = materializations["curated/fact_sales"]
    assert sales["dagster/row_count"].value == 3 and sales["inserted"].value == 3 and sales["replaced"].value == 0
    assert sales["unmatched_customer_key"].value == 0  # customer 9 became an inferred member
    assert sales["unmatched_calendar_ship_key"].value == 2
    # customer 9 is in no base table: whichever of fact and bridge ran first created it once
    bridge = materializations["curated/bridge_customer_employee"]
    inferred = sales["inferred_members_dim_customer"].value + bridge["inferred_members_dim_customer"].value
    assert inferred == 1
    assert "preview" in sales and "delta_version" in sales and "dagster/column_schema" in sales
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.description) for c in checks if not c.passed]
    assert {c.check_name for c in checks} == {
        "surrogate_key_unique", "unknown_member_present", "one_current_version", "dimension_ids_exist", "unknown_member_share",
    }
    # Checks run inside the step that materializes their table: one step per asset.
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert len(steps) == len(_assets(defs))

    # An overwrite fact run again replaced the table: "replaced", not a deletion.
    again = dg.materialize(_assets(defs), resources={"lakehouse": LakehouseResource(data_dir=str(curated_base))})
    [sales_again] = again.asset_materializations_for_node("curated__fact_sales")
    counts = {k: sales_again.metadata[k].value for k in ("inserted", "replaced", "soft_deleted", "updated")}
    assert counts == {"inserted": 3, "replaced": 3, "soft_deleted": 0, "updated": 0}
    assert "deleted" not in sales_again.metadata

    con = duckdb.connect(str(curated_base / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM curated.fact_sales").fetchall() == [(3,)]
        assert con.execute("SELECT count(*) FROM curated.dim_customer WHERE lh_is_inferred").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM base.erp_customer").fetchall() == [(2,)]
    finally:
        con.close()


def test_incremental_fact_is_daily_partitioned_and_replaces_its_day(curated_base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.yaml").write_text(
        "calendar: {start: '2026-01-01', end: '2026-01-31'}\n"
        "facts:\n  daily_sales:\n    write_pattern: incremental\n    degenerate_keys: [order_line_key]\n"
    )
    (folder / "fact_daily_sales.sql").write_text(
        "SELECT order_line_id AS order_line_key, CAST(strftime(order_date, '%Y%m%d') AS INTEGER) AS calendar_key,"
        " amount FROM base.erp_sales_order_line"
        " WHERE getvariable('partition_date') IS NULL OR order_date = getvariable('partition_date')"
    )
    definitions = build_curated_definitions(load_curated_model(folder))
    assets = _assets(definitions)
    fact = next(a for a in assets if a.key.path[-1] == "fact_daily_sales")
    assert fact.partitions_def is not None
    resources = {"lakehouse": LakehouseResource(data_dir=str(curated_base))}
    calendar = [a for a in assets if a.key.path[-1] == "dim_calendar"]
    assert dg.materialize(calendar, resources=resources).success
    for _ in range(2):  # the second run of the same day replaces, never doubles
        assert dg.materialize([fact], resources=resources, partition_key="2026-01-02").success
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([fact], resources=resources, partition_key="2026-01-03", instance=instance).success
    # Its checks are partitioned like it: each evaluation is recorded for the day loaded.
    assert fact.check_specs and all(spec.partitions_def == fact.partitions_def for spec in fact.check_specs)
    for spec in fact.check_specs:
        history = instance.event_log_storage.get_asset_check_execution_history(spec.key, limit=10)
        assert [r.partition for r in history] == ["2026-01-03"], spec.name
    con = duckdb.connect(str(curated_base / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT calendar_key, count(*) FROM curated.fact_daily_sales GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(20260102, 2), (20260103, 1)]


def test_broken_sql_fails_model_load_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("dimensions:\n  thing: {}\n")
    (tmp_path / "dim_thing.sql").write_text("SELEC thing_id AS thing_key FROM base.x")
    with pytest.raises(MetadataError, match="dim_thing.sql"):
        build_curated_definitions(load_curated_model(tmp_path))


def test_a_deterministic_sql_error_runs_once_and_names_the_file(curated_base: Path, tmp_path: Path) -> None:
    """A binder error fails the same way on every attempt: one attempt, not the retry policy's three."""
    folder = tmp_path / "broken_model"
    folder.mkdir()
    (folder / "model.yaml").write_text("dimensions:\n  thing:\n    retry: {max_retries: 2, delay_seconds: 0}\n")
    (folder / "dim_thing.sql").write_text("SELECT no_such_column AS thing_key FROM base.erp_customer")
    [asset] = _assets(build_curated_definitions(load_curated_model(folder)))
    assert asset.op.retry_policy.max_retries == 2
    result = dg.materialize(
        [asset], resources={"lakehouse": LakehouseResource(data_dir=str(curated_base))}, raise_on_error=False
    )
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert events.count("STEP_START") == 1 and "STEP_UP_FOR_RETRY" not in events
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert "dim_thing.sql" in description and "no_such_column" in description


@pytest.mark.parametrize("blocking", [False, True])
def test_unknown_share_blocking_turns_a_breach_into_an_error_that_stops_the_run(
    curated_base: Path, tmp_path: Path, blocking: bool
) -> None:
    """One of three order lines has a customer the dimension lacks: 33% unknown against a 5% limit."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.yaml").write_text(
        "calendar: {start: '2026-01-01', end: '2026-01-31'}\n"
        "dimensions:\n  customer: {write_pattern: scd1}\n"
        f"facts:\n  lines:\n    degenerate_keys: [order_line_key]\n    unknown_share_blocking: {str(blocking).lower()}\n"
    )
    (folder / "dim_customer.sql").write_text("SELECT customer_id AS customer_key, customer_name FROM base.erp_customer")
    (folder / "fact_lines.sql").write_text(
        "SELECT order_line_id AS order_line_key, customer_id AS customer_key,"
        " CAST(strftime(order_date, '%Y%m%d') AS INTEGER) AS calendar_key, amount FROM base.erp_sales_order_line"
    )
    assets = _assets(build_curated_definitions(load_curated_model(folder)))
    fact = next(a for a in assets if a.key.path[-1] == "fact_lines")
    [spec] = [s for s in fact.check_specs if s.name == "unknown_member_share"]
    assert spec.blocking is blocking
    result = dg.materialize(
        assets, resources={"lakehouse": LakehouseResource(data_dir=str(curated_base))}, raise_on_error=False
    )
    [evaluation] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.asset_check_evaluation_data.check_name == "unknown_member_share"
    ]
    assert evaluation.passed is False
    expected = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
    assert evaluation.severity == expected
    assert result.success is (not blocking)
