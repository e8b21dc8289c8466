"""Asset checks on Base tables: keyed invariants, keys present, rows kept aside by quality rules."""

import dagster as dg
import duckdb
from deltalake import DeltaTable

from medallion_assets.base.assets import base_asset_key
from medallion_assets.engine.base.invariants import duplicate_keys, scd2_violations
from medallion_assets.engine.base.load import quarantine_path, table_path
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.resources import LakehouseResource


def _dataset(path):
    return DeltaTable(str(path)).to_pyarrow_dataset() if DeltaTable.is_deltatable(str(path)) else None


def build_base_checks(tables: tuple[BaseTable, ...] | list[BaseTable]) -> list[dg.AssetChecksDefinition]:
    checks: list[dg.AssetChecksDefinition] = []
    for table in tables:
        if not table.include:
            continue
        if table.keyed:
            checks += [build_base_check(table=table), _keys_not_null(table)]
        checks.append(_quarantined_rows(table))
    return checks


def build_base_check(*, table: BaseTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=base_asset_key(table),
        name="keyed_invariants",
        description="Business keys unique on current rows; SCD2: one current row per key, intervals without gaps or overlaps.",
        blocking=False,
    )
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        dataset = _dataset(table_path(lakehouse.root, table))
        if dataset is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "table not created yet"})
        if table.write_behaviour == "scd2":
            problems = scd2_violations(dataset, table.business_keys)
        else:
            problems = {"duplicate_keys": duplicate_keys(dataset, table.business_keys)}
        return dg.AssetCheckResult(
            passed=not any(problems.values()), metadata={k: dg.MetadataValue.int(v) for k, v in problems.items()}
        )

    return _check


def _keys_not_null(table: BaseTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=base_asset_key(table), name="keys_not_null", description="No business key column is null.")
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        dataset = _dataset(table_path(lakehouse.root, table))
        if dataset is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "table not created yet"})
        con = duckdb.connect()
        con.register("t", dataset)
        counts = {
            key: con.execute(f'SELECT count(*) FROM t WHERE "{key}" IS NULL').fetchall()[0][0] for key in table.business_keys
        }
        con.close()
        return dg.AssetCheckResult(
            passed=not any(counts.values()), metadata={f"null_{k}": dg.MetadataValue.int(v) for k, v in counts.items()}
        )

    return _check


def _quarantined_rows(table: BaseTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=base_asset_key(table),
        name="quarantined_rows",
        description="Rows kept aside in base/_quarantine because they failed a data-quality rule (a warning, not an error).",
    )
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        dataset = _dataset(quarantine_path(lakehouse.root, table))
        count = 0 if dataset is None else dataset.count_rows()
        return dg.AssetCheckResult(
            passed=count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined_rows": dg.MetadataValue.int(count)},
        )

    return _check
