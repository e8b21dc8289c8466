"""Checks on Base tables, evaluated in the step that loads the table: keyed invariants, keys
present, and rows kept aside by quality rules (a warning)."""


import dagster as dg

from medallion_assets.common.observability import TableChecks, check_spec
from medallion_assets.engine.base.invariants import duplicate_keys, scd2_violations
from medallion_assets.engine.base.load import quarantine_path, table_path
from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.memory import new_database
from medallion_assets.engine.sqltext import quote_identifier
from medallion_assets.engine.storage.lake import LakeRoot, is_delta, open_delta

KEYED_INVARIANTS = "keyed_invariants"
KEYS_NOT_NULL = "keys_not_null"
QUARANTINED_ROWS = "quarantined_rows"

DESCRIPTIONS = {
    KEYED_INVARIANTS: "Business keys unique on current rows; SCD2: one current row per key, intervals without gaps or overlaps.",
    KEYS_NOT_NULL: "No business key column is null.",
    QUARANTINED_ROWS: "Rows kept aside in base/_quarantine because they failed a data-quality rule (a warning, not an error).",
}


def _dataset(path):
    return open_delta(path).to_pyarrow_dataset() if is_delta(path) else None


def check_names(table: BaseTable) -> list[str]:
    return ([KEYED_INVARIANTS, KEYS_NOT_NULL] if table.keyed else []) + [QUARANTINED_ROWS]


def build_base_checks(
    *, table: BaseTable, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None = None
) -> TableChecks:
    """The checks of ``table``: declared on its asset, evaluated after each load. With the asset's
    ``partitions_def`` each evaluation is recorded for the partition the step loaded."""
    specs = [
        check_spec(name=name, asset=asset_key, description=DESCRIPTIONS[name], blocking=False, partitions_def=partitions_def)
        for name in check_names(table)
    ]
    return TableChecks(specs=specs, evaluate=lambda data_dir: evaluate_base_checks(table=table, data_dir=data_dir))


def evaluate_base_checks(*, table: BaseTable, data_dir: LakeRoot) -> list[dg.AssetCheckResult]:
    results = []
    if table.keyed:
        dataset = _dataset(table_path(data_dir, table))
        results += [_keyed_invariants(table, dataset), _keys_not_null(table, dataset)]
    results.append(_quarantined_rows(table, data_dir))
    return results


def _not_created(name: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=True, metadata={"note": "table not created yet"})


def _keyed_invariants(table: BaseTable, dataset) -> dg.AssetCheckResult:
    if dataset is None:
        return _not_created(KEYED_INVARIANTS)
    if table.write_behaviour == "scd2":
        problems = scd2_violations(dataset, table.business_keys)
    else:
        problems = {"duplicate_keys": duplicate_keys(dataset, table.business_keys)}
    return dg.AssetCheckResult(
        check_name=KEYED_INVARIANTS,
        passed=not any(problems.values()),
        metadata={k: dg.MetadataValue.int(v) for k, v in problems.items()},
    )


def _keys_not_null(table: BaseTable, dataset) -> dg.AssetCheckResult:
    if dataset is None:
        return _not_created(KEYS_NOT_NULL)
    con = new_database()
    try:
        con.register("t", dataset)
        counts = {
            key: con.execute(f"SELECT count(*) FROM t WHERE {quote_identifier(key)} IS NULL").fetchall()[0][0]
            for key in table.business_keys
        }
    finally:
        con.close()
    return dg.AssetCheckResult(
        check_name=KEYS_NOT_NULL,
        passed=not any(counts.values()),
        metadata={f"null_{k}": dg.MetadataValue.int(v) for k, v in counts.items()},
    )


def _quarantined_rows(table: BaseTable, data_dir: LakeRoot) -> dg.AssetCheckResult:
    dataset = _dataset(quarantine_path(data_dir, table))
    count = 0 if dataset is None else dataset.count_rows()
    return dg.AssetCheckResult(
        check_name=QUARANTINED_ROWS,
        passed=count == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": dg.MetadataValue.int(count)},
    )
