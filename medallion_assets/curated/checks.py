"""Checks of the curated layer, per entity, evaluated in the step that loads the table."""


import dagster as dg

from medallion_assets.common.observability import TableChecks, check_spec
from medallion_assets.engine.curated.checks import (
    CheckOutcome,
    check_dimension,
    check_fact_references,
    check_unknown_share,
)
from medallion_assets.engine.curated.model import DimensionMeta, FactMeta
from medallion_assets.engine.storage.lake import LakeRoot

DIMENSION_DESCRIPTIONS = {
    "surrogate_key_unique": "Every surrogate id of the dimension occurs once.",
    "unknown_member_present": "Exactly one live unknown member (id -1), never soft-deleted.",
    "one_current_version": "SCD2: every business key has exactly one current version.",
}
DIMENSION_IDS_EXIST = "dimension_ids_exist"
UNKNOWN_MEMBER_SHARE = "unknown_member_share"


def _result(outcome: CheckOutcome, name: str, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, passed=outcome.passed, description=outcome.description, metadata=outcome.metadata, severity=severity
    )


def build_dimension_checks(*, meta: DimensionMeta, asset_key: dg.AssetKey) -> TableChecks:
    """Surrogate key unique, unknown member present, and (SCD2) one current version per key."""
    names = ["surrogate_key_unique", "unknown_member_present"] + (["one_current_version"] if meta.is_scd2 else [])
    specs = [
        check_spec(name=name, asset=asset_key, description=DIMENSION_DESCRIPTIONS[name], blocking=False, partitions_def=None)
        for name in names
    ]

    def evaluate(data_dir: LakeRoot) -> list[dg.AssetCheckResult]:
        outcomes = {o.name: o for o in check_dimension(meta, data_dir)}
        # A table that was not loaded yields one "table_exists" outcome: every check reports it.
        return [_result(outcomes.get(name) or next(iter(outcomes.values())), name) for name in names]

    return TableChecks(specs=specs, evaluate=evaluate)


def build_fact_checks(
    *, meta: FactMeta, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None = None
) -> TableChecks:
    """Every surrogate id of the fact or bridge exists in its dimension; few rows map to -1. With
    the asset's ``partitions_def`` each evaluation is recorded for the partition the step loaded."""
    if not meta.spec.map_keys:
        return TableChecks()
    # unknown_share_blocking: a share above the limit is an error that blocks downstream assets
    blocking = meta.spec.unknown_share_blocking
    specs = [
        check_spec(
            name=DIMENSION_IDS_EXIST,
            asset=asset_key,
            description="Every surrogate id (and calendar key) of the table exists in its dimension.",
            blocking=False,
            partitions_def=partitions_def,
        ),
        check_spec(
            name=UNKNOWN_MEMBER_SHARE,
            asset=asset_key,
            description=(
                f"Share of rows mapped to -1 per key column at most {meta.spec.max_unknown_share:.0%} (see model.yaml)."
                + (" Blocking: downstream assets wait until it passes." if blocking else "")
            ),
            blocking=blocking,
            partitions_def=partitions_def,
        ),
    ]

    def evaluate(data_dir: LakeRoot) -> list[dg.AssetCheckResult]:
        return [
            _result(check_fact_references(meta, data_dir), DIMENSION_IDS_EXIST),
            _result(
                check_unknown_share(meta, data_dir),
                UNKNOWN_MEMBER_SHARE,
                dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            ),
        ]

    return TableChecks(specs=specs, evaluate=evaluate)
