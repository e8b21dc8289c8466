import dagster as dg

from medallion_assets.definitions import defs


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_every_source_object_has_a_landing_asset():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for name in ("erp_customer", "erp_product", "erp_employee", "erp_sales_order_line", "finance_budget"):
        assert f"landing/{name}" in keys


def test_jobs_exist():
    for name in ("medallion_daily", "landing_to_base"):
        assert isinstance(defs.resolve_job_def(name).partitions_def, dg.DailyPartitionsDefinition)


def test_the_code_location_loads_without_any_warning():
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import medallion_assets.definitions"], capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_orchestration_is_all_there():
    for job in ("medallion_daily", "landing_to_base", "dimensions", "facts", "maintenance", "rollback_run"):
        assert defs.resolve_job_def(job) is not None
    assert {s.name for s in defs.schedules} == {"medallion_daily_schedule", "maintenance_schedule"}
    assert {s.name for s in defs.sensors} == {
        "landing_files_sensor",
        "run_failure_notifier",
        "curated_automation",
    }
    graph = defs.resolve_asset_graph()
    check_names = {key.name for key in graph.asset_check_keys}
    assert {"keyed_invariants", "keys_not_null", "quarantined_rows", "surrogate_key_unique", "unknown_member_share"} <= check_names
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[0] in ("base", "curated"):
            assert node.freshness_policy is not None, key
        if key.path[0] == "curated":
            assert node.automation_condition is not None, key


def test_every_asset_has_a_retry_policy_and_kinds():
    for assets_def in defs.assets:
        assert assets_def.op.retry_policy is not None, assets_def.key
        for spec in assets_def.specs:
            assert spec.kinds, spec.key
