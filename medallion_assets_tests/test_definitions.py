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
