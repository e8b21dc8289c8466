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


def test_every_check_is_described_and_every_asset_carries_its_layer_tag():
    graph = defs.resolve_asset_graph()
    for assets_def in defs.assets:
        for spec in assets_def.specs:
            assert spec.tags.get("layer") == spec.key.path[0], spec.key
        for check in assets_def.check_specs:
            assert check.description, check.key
    assert {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys} == expected_checks()


def expected_checks() -> set[tuple[str, str]]:
    """The checks the shipped metadata asks for, by the rules the docs state: every base table
    counts its quarantined rows, keyed ones hold the SCD invariants and non-null keys; every
    dimension has a unique surrogate key and an unknown member, SCD2 ones one current version per
    key; every fact or bridge that maps keys checks its ids and its share of unknown members."""
    from medallion_assets.engine.base.model import load_base_tables
    from medallion_assets.engine.curated.model import load_curated_model
    from medallion_assets.engine.metadata import shipped_metadata_root

    root = shipped_metadata_root()
    expected = set()
    for table in load_base_tables(root / "base"):
        names = ["quarantined_rows"] + (["keyed_invariants", "keys_not_null"] if table.keyed else [])
        expected |= {(f"base/{table.name}", name) for name in names}
    model = load_curated_model(root / "curated")
    for dimension in model.dimensions.values():
        names = ["surrogate_key_unique", "unknown_member_present"] + (["one_current_version"] if dimension.is_scd2 else [])
        expected |= {(f"curated/{dimension.table}", name) for name in names}
    for fact in model.facts.values():
        if fact.spec.map_keys:
            expected |= {(f"curated/{fact.table}", name) for name in ("dimension_ids_exist", "unknown_member_share")}
    assert len(expected) > 20  # the sample's five base tables, three dimensions and three mapped facts
    return expected


def test_jobs_run_on_the_forkserver_with_the_code_location_preloaded():
    from medallion_assets.orchestration.jobs import PRELOAD_MODULES, multiprocess_run_config

    expected = multiprocess_run_config()
    multiprocess = expected["execution"]["config"]["multiprocess"]
    assert multiprocess["start_method"] == {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}
    for name in ("medallion_daily", "landing_to_base"):
        job = defs.resolve_job_def(name)
        assert job.partitioned_config.get_run_config_for_partition_key("2026-01-02") == expected, name
    for name in ("dimensions", "facts"):
        schema = defs.resolve_job_def(name).config_mapping.config_schema
        default = schema.as_field().default_value["execution"]["config"]["multiprocess"]
        assert default["start_method"] == multiprocess["start_method"], name


def test_runs_without_run_config_also_use_the_forkserver():
    """The asset graph's Materialize button and GraphQL launches give no run config: the code
    location's executor defaults to the jobs' execution config, and a launchpad may still
    choose in_process."""
    from dagster._core.system_config.objects import ResolvedRunConfig

    from medallion_assets.orchestration.jobs import multiprocess_run_config

    implicit = defs.resolve_implicit_global_asset_job_def()
    resolved = ResolvedRunConfig.build(implicit, {})
    engine = resolved.execution.execution_engine_config["multiprocess"]
    expected = multiprocess_run_config()["execution"]["config"]["multiprocess"]
    assert {key: engine[key] for key in expected} == expected
    chosen = ResolvedRunConfig.build(implicit, {"execution": {"config": {"in_process": {}}}})
    assert "in_process" in chosen.execution.execution_engine_config


def test_preloading_the_code_location_opens_no_delta_table():
    """Steps are forks of the forkserver; deltalake's tokio runtime does not survive a fork, so
    importing what the forkserver preloads must not start it."""
    import subprocess
    import sys

    from medallion_assets.orchestration.jobs import PRELOAD_MODULES

    code = (
        "import importlib, os\n"
        f"for m in {list(PRELOAD_MODULES)!r}: importlib.import_module(m)\n"
        "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
        "print(sum(n.startswith('tokio') for n in names))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "0"


def test_column_lineage_is_on_the_definitions_before_any_run():
    graph = defs.resolve_asset_graph()
    lineage = graph.get(dg.AssetKey(["curated", "fact_sales"])).metadata["dagster/column_lineage"].value
    deps = {column: {(d.asset_key.to_user_string(), d.column_name) for d in found} for column, found in lineage.deps_by_column.items()}
    assert deps["amount"] == {("base/erp_sales_order_line", "amount")}
    assert deps["customer_id"] == {("base/erp_sales_order_line", "customer_id"), ("curated/dim_customer", "customer_id")}


def test_a_base_table_that_lists_its_columns_declares_their_lineage():
    from medallion_assets.base.assets import build_base_asset
    from medallion_assets.engine.base.model import BaseTable

    table = BaseTable.model_validate(
        {
            "name": "shop_item",
            "object": "item",
            "source": "shop",
            "landing": [{"source": "shop", "object": "item"}],
            "format": "csv",
            "write_behaviour": "scd1",
            "business_keys": ["item_id"],
            "translations": {"ItemName": "item_name"},
            "columns": ["item_id", "item_name"],
        }
    )
    spec = build_base_asset(table=table).specs_by_key[dg.AssetKey(["base", "shop_item"])]
    lineage = spec.metadata["dagster/column_lineage"].value.deps_by_column
    assert {c: [(d.asset_key.to_user_string(), d.column_name) for d in deps] for c, deps in lineage.items()} == {
        "item_id": [("landing/shop_item", "item_id")],
        "item_name": [("landing/shop_item", "ItemName")],
    }
