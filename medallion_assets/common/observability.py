"""What every layer shows in the UI: one vocabulary for materialization metadata, previews, and
table checks evaluated inside the step that materializes the table.

The same names mean the same thing in base and curated, so the UI's plots compare across layers:

| key | meaning |
|---|---|
| ``rows_read`` | rows the load read (landing rows for base, SQL result rows for curated) |
| ``inserted`` | rows (or versions) added |
| ``updated`` | rows changed in place, or versions closed by a new version |
| ``soft_deleted`` | rows marked ``lh_is_deleted`` because their key vanished |
| ``unchanged`` | rows read that changed nothing |
| ``replaced`` | stored rows that an overwrite of the table (or of a partition or range) replaced |
| ``quarantined`` | rows kept aside by a data-quality rule |
| ``delta_version`` | the table's Delta version after the load |
| ``dagster/row_count`` | rows in the table after the load, when known |
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

PREVIEW_ROWS = 5


def markdown_preview(table: pa.Table | None, limit: int = PREVIEW_ROWS) -> str:
    """The first rows of ``table`` as a Markdown table for the asset's metadata panel."""
    if table is None or table.num_rows == 0:
        return "_empty_"

    def cell(value: object) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    columns = table.column_names
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.slice(0, limit).to_pylist():
        lines.append("| " + " | ".join(cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class LoadSummary:
    """What one load of a table did, in the vocabulary shared by the layers (module docstring)."""

    rows_read: int | None = None
    inserted: int = 0
    updated: int = 0
    soft_deleted: int = 0
    unchanged: int | None = None
    replaced: int = 0
    quarantined: int | None = None
    delta_version: int | None = None
    row_count: int | None = None
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) of the stored table
    descriptions: dict[str, str] = field(default_factory=dict)  # column name -> description from metadata
    preview: pa.Table | None = None


def load_metadata(summary: LoadSummary) -> dict[str, Any]:
    """Materialization metadata of a load: the counts the UI plots, the schema and a preview.

    Counts a layer cannot know (``None``) are left out rather than reported as zero."""
    counts = {
        "rows_read": summary.rows_read,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "soft_deleted": summary.soft_deleted,
        "unchanged": summary.unchanged,
        "replaced": summary.replaced,
        "quarantined": summary.quarantined,
        "delta_version": summary.delta_version,
        "dagster/row_count": summary.row_count,
    }
    metadata: dict[str, Any] = {name: dg.MetadataValue.int(value) for name, value in counts.items() if value is not None}
    if summary.columns:
        metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[
                    dg.TableColumn(name=name, type=type_name, description=summary.descriptions.get(name))
                    for name, type_name in summary.columns
                ]
            )
        )
    if summary.preview is not None:
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(summary.preview))
    return metadata


def column_lineage(lineage: Mapping[str, Sequence[Any]]) -> dg.MetadataValue:
    """``dagster/column_lineage``: each column and the columns (engine ``ColumnRef``: layer, table,
    column) it is computed from; a column the framework makes (``lh_``, surrogate keys) has none."""
    deps = {
        column: [dg.TableColumnDep(asset_key=dg.AssetKey([ref.layer, ref.table]), column_name=ref.column) for ref in refs]
        for column, refs in lineage.items()
    }
    return dg.MetadataValue.column_lineage(dg.TableColumnLineage(deps_by_column=deps))


def check_spec(
    *, name: str, asset: dg.AssetKey, description: str, blocking: bool, partitions_def: dg.PartitionsDefinition | None
) -> dg.AssetCheckSpec:
    """A check declared on an asset. Given the asset's ``partitions_def``, the check is partitioned
    like the asset: each evaluation is recorded for the partition its step loaded, and the Checks
    tab lists it per partition (unpartitioned, Dagster leaves the partition's planned evaluation
    skipped). Dagster 1.13 marks partitioned checks as preview; that warning is silenced here,
    the one place that declares them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name=name, asset=asset, description=description, blocking=blocking, partitions_def=partitions_def
        )


@dataclass(frozen=True)
class TableChecks:
    """A table's checks, evaluated inside the step that materializes it.

    ``specs`` declare the checks on the asset (names, descriptions and blocking show in the UI's
    Checks tab); ``evaluate(data_dir)`` returns one result per spec, after the load has committed.
    One step instead of a step per check: no extra process, and the table is opened once.
    """

    specs: list[dg.AssetCheckSpec] = field(default_factory=list)
    evaluate: Callable[[Path], list[dg.AssetCheckResult]] = lambda _data_dir: []

    def results(self, data_dir: Path) -> list[dg.AssetCheckResult]:
        results = self.evaluate(data_dir)
        missing = {spec.name for spec in self.specs} - {result.check_name for result in results}
        if missing:  # a programming error in a check factory, not bad data
            raise RuntimeError(f"checks {sorted(missing)} returned no result")
        return results
