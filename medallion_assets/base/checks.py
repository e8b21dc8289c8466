"""Asset checks on Base tables: the keyed invariants (SCD2 history sound, SCD1 keys unique)."""


import dagster as dg
from deltalake import DeltaTable

from medallion_assets.base.assets import base_asset_key
from medallion_assets.engine.base.invariants import duplicate_keys, scd2_violations
from medallion_assets.engine.base.load import table_path
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.resources import LakehouseResource


def build_base_check(*, table: BaseTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=base_asset_key(table),
        name="keyed_invariants",
        description="SCD2: one current row per key, intervals without gaps or overlaps; SCD1: unique keys.",
        blocking=False,
    )
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        path = table_path(lakehouse.root, table)
        if not DeltaTable.is_deltatable(str(path)):
            return dg.AssetCheckResult(passed=True, metadata={"note": "table not created yet"})
        dataset = DeltaTable(str(path)).to_pyarrow_dataset()
        if table.write_behaviour == "scd2":
            problems = scd2_violations(dataset, table.business_keys)
        else:
            problems = {"duplicate_keys": duplicate_keys(dataset, table.business_keys)}
        return dg.AssetCheckResult(passed=not any(problems.values()), metadata={k: dg.MetadataValue.int(v) for k, v in problems.items()})

    return _check


def build_base_checks(tables: tuple[BaseTable, ...] | list[BaseTable]) -> list[dg.AssetChecksDefinition]:
    return [build_base_check(table=t) for t in tables if t.include and t.keyed]
