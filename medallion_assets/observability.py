"""Materialization metadata shared by the layers: what the UI shows and plots."""

from __future__ import annotations

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
