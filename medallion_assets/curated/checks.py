"""Asset checks of the curated layer, built per entity from the engine's check functions."""


import dagster as dg

from medallion_assets.curated.assets import asset_key
from medallion_assets.engine.curated.checks import (
    CheckOutcome,
    check_dimension,
    check_fact_references,
    check_unknown_share,
)
from medallion_assets.engine.curated.model import DimensionMeta, FactMeta
from medallion_assets.resources import LakehouseResource


def _result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description, metadata=outcome.metadata)


def build_dimension_checks(*, meta: DimensionMeta) -> list[dg.AssetChecksDefinition]:
    """Surrogate key unique, unknown member present, and (SCD2) one current version per key."""
    names = ["surrogate_key_unique", "unknown_member_present"] + (["one_current_version"] if meta.is_scd2 else [])
    checks = []
    for name in names:

        def _make(check_name: str) -> dg.AssetChecksDefinition:
            @dg.asset_check(asset=asset_key(meta.table), name=check_name, blocking=False)
            def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
                outcomes = {o.name: o for o in check_dimension(meta, lakehouse.root)}
                outcome = outcomes.get(check_name) or next(iter(outcomes.values()))
                return _result(outcome)

            return _check

        checks.append(_make(name))
    return checks


def build_fact_checks(*, meta: FactMeta) -> list[dg.AssetChecksDefinition]:
    """Every surrogate id of the fact or bridge exists in its dimension."""
    if not meta.spec.map_keys:
        return []

    @dg.asset_check(asset=asset_key(meta.table), name="dimension_ids_exist")
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        return _result(check_fact_references(meta, lakehouse.root))

    @dg.asset_check(
        asset=asset_key(meta.table),
        name="unknown_member_share",
        description=f"Share of rows mapped to -1 per key column at most {meta.spec.max_unknown_share:.0%} (see model.yaml).",
    )
    def _share(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        outcome = check_unknown_share(meta, lakehouse.root)
        return dg.AssetCheckResult(
            passed=outcome.passed,
            description=outcome.description,
            metadata=outcome.metadata,
            severity=dg.AssetCheckSeverity.WARN,
        )

    return [_check, _share]
