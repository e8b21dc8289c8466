"""What every layer shows in the UI: materialization metadata rendered from the engine's one
``LoadOutcome`` (its fields and their meaning: ``medallion_assets.engine.outcome``), previews,
and table checks evaluated inside the step that materializes the table."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from medallion_assets.engine.outcome import PREVIEW_ROWS, LoadOutcome
from medallion_assets.engine.storage.lake import LakeRoot

WATERMARK_KEY = "watermark"  # a landing materialization's highest watermark: the next delta extract starts there
LANDING_PATHS_KEY = "landing_paths"  # the files a landing materialization wrote, for the landing sensor


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


def load_metadata(outcome: LoadOutcome, *, descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Materialization metadata of any layer's load: its status, the counts the UI plots, the
    schema with the metadata's column descriptions, a preview, and what only one layer knows
    (files landed with their watermark; landing files read; rows mapped to the unknown member,
    inferred members).

    Counts a layer cannot know (``None``) are left out rather than reported as zero."""
    if outcome.layer == "landing":
        return _landing_metadata(outcome)
    counts = {
        "rows_read": outcome.rows_read,
        "inserted": outcome.inserted,
        "updated": outcome.updated,
        "soft_deleted": outcome.soft_deleted,
        "unchanged": outcome.unchanged,
        "replaced": outcome.replaced,
        "quarantined": outcome.quarantined,
        "delta_version": outcome.delta_version,
        "dagster/row_count": outcome.row_count,
    }
    metadata: dict[str, Any] = {"status": dg.MetadataValue.text(outcome.status)}
    metadata |= {name: dg.MetadataValue.int(value) for name, value in counts.items() if value is not None}
    if outcome.write_behaviour:
        metadata["write_behaviour"] = dg.MetadataValue.text(outcome.write_behaviour)
    if outcome.layer == "base":
        metadata["landing_files"] = dg.MetadataValue.md("\n".join(f"- `{f}`" for f in outcome.files) or "no files")
    if outcome.path:
        metadata["path"] = dg.MetadataValue.path(outcome.path)
    if outcome.columns:
        described = descriptions or {}
        metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[dg.TableColumn(name=name, type=kind, description=described.get(name)) for name, kind in outcome.columns]
            )
        )
    if outcome.preview is not None:
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(outcome.preview))
    metadata |= {f"unmatched_{column}": dg.MetadataValue.int(n) for column, n in outcome.unmatched.items()}
    metadata |= {f"inferred_members_{table}": dg.MetadataValue.int(n) for table, n in outcome.inferred.items()}
    if outcome.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(outcome.notes))
    return metadata


def _landing_metadata(outcome: LoadOutcome) -> dict[str, Any]:
    rows = "\n".join(
        f"| `{name}` | {f.load_type} | {f.rows:,} | {f.bytes:,} |" for name, f in zip(outcome.files, outcome.landed, strict=True)
    )
    metadata: dict[str, Any] = {
        "status": outcome.status,
        "files": dg.MetadataValue.int(len(outcome.files)),
        "rows": dg.MetadataValue.int(outcome.rows_read or 0),
        "bytes": dg.MetadataValue.int(outcome.bytes_written or 0),
        "landing_files": dg.MetadataValue.md("| file | load type | rows | bytes |\n|---|---|---|---|\n" + rows if rows else "no files"),
        LANDING_PATHS_KEY: dg.MetadataValue.json(list(outcome.files)),
        WATERMARK_KEY: dg.MetadataValue.text(outcome.watermark.isoformat() if outcome.watermark else ""),
    }
    if outcome.extracted_at:
        metadata["extracted_at"] = dg.MetadataValue.text(outcome.extracted_at.isoformat())
    if outcome.warnings:
        metadata["extract_day_mismatch"] = dg.MetadataValue.text("; ".join(outcome.warnings))
    if outcome.replaced_files:
        metadata["replaced_files"] = dg.MetadataValue.int(len(outcome.replaced_files))
    if outcome.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(outcome.notes))
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

    def results(self, data_dir: LakeRoot) -> list[dg.AssetCheckResult]:
        results = self.evaluate(data_dir)
        missing = {spec.name for spec in self.specs} - {result.check_name for result in results}
        if missing:  # a programming error in a check factory, not bad data
            raise RuntimeError(f"checks {sorted(missing)} returned no result")
        return results
