"""Curated tables follow base changes through declarative automation, once per change."""

import dagster as dg

from medallion_assets.definitions import defs

CUSTOMER_BASE = dg.AssetKey(["base", "erp_customer"])
CURATED = dg.AssetSelection.groups("curated")


def requested(result) -> set[dg.AssetKey]:
    return {r.key for r in result.results if r.true_subset.size}


def test_a_base_change_updates_its_curated_readers_once():
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=CURATED)
        assert first.total_requested == 0

        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=CUSTOMER_BASE, partition="2026-01-02"))
        second = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=CURATED, cursor=first.cursor)
        wanted = {key.path[1] for key in requested(second)}
        # dim_customer reads base.erp_customer; the facts and the bridge read dim_customer, so they
        # come in the same request (and run after it); dimensions that did not change do not.
        assert wanted == {"dim_customer", "fact_sales", "fact_budget", "bridge_customer_employee"}

        # The run does what was asked, dimension first.
        for name in ("dim_customer", "fact_sales", "fact_budget", "bridge_customer_employee"):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey(["curated", name])))
        third = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=CURATED, cursor=second.cursor)
        assert third.total_requested == 0, "one change must not materialize an asset twice"
