"""What a load did: one immutable outcome for every layer's load.

A landing extract, a base partition load and a curated table load each return a ``LoadOutcome``;
the Dagster layer renders it to materialization metadata in one place
(``medallion_assets.common.observability.load_metadata``). The counts mean the same in every
layer, so the UI's plots compare across layers:

| field | meaning |
|---|---|
| ``rows_read`` | rows the load read (source rows for landing, landing rows for base, SQL result rows for curated) |
| ``inserted`` | rows (or versions) added |
| ``updated`` | rows changed in place, or versions closed by a new version |
| ``soft_deleted`` | rows marked ``lh_is_deleted`` because their key vanished |
| ``unchanged`` | rows read that changed nothing |
| ``replaced`` | stored rows that an overwrite of the table (or of a partition or range) replaced |
| ``quarantined`` | rows kept aside by a data-quality rule |
| ``row_count`` | rows in the table after the load, when known |
| ``delta_version`` | the table's Delta version after the load |

A count a layer cannot know is ``None`` and left out of the metadata rather than shown as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

import pyarrow as pa

PREVIEW_ROWS = 5  # rows of a stored table shown with each materialization

Layer = Literal["landing", "base", "curated"]
Status = Literal[
    "loaded", "no_files", "up_to_date", "stale", "no_change",  # base and curated
    "extracted", "kept", "nothing_new",  # landing: a new extract, one already landed, nothing dropped
]


@dataclass(frozen=True)
class WrittenFile:
    """One landing file an extract wrote (or found already landed)."""

    path: Any  # a local Path or an object-store LakePath
    load_type: str  # full, delta or keys
    rows: int
    bytes: int


@dataclass(frozen=True)
class WriteCounts:
    """What one write step did to a table; a load folds it into its outcome with ``counted``."""

    status: Status = "loaded"
    inserted: int = 0
    updated: int = 0
    soft_deleted: int = 0
    unchanged: int | None = None
    replaced: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadOutcome:
    """What one load of one table (and partition) did, in the vocabulary of the module docstring."""

    layer: Layer
    table: str
    partition_date: date | None = None
    status: Status = "loaded"
    write_behaviour: str | None = None  # base write behaviour or curated write pattern
    rows_read: int | None = None
    inserted: int = 0
    updated: int = 0
    soft_deleted: int = 0
    unchanged: int | None = None
    replaced: int = 0
    quarantined: int | None = None
    files: tuple[str, ...] = ()  # files read (base) or written (landing), relative to the lake
    bytes_written: int | None = None
    landed: tuple[WrittenFile, ...] = ()  # landing: each file written or kept, with its load type, rows and bytes
    replaced_files: tuple[Any, ...] = ()  # landing: earlier files of the partition a forced re-extract removed
    watermark: datetime | None = None  # landing: the highest watermark value extracted
    extracted_at: datetime | None = None  # landing: the source's clock when the extract was read
    row_count: int | None = None
    delta_version: int | None = None
    path: str | None = None  # where the table is stored
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) of the stored table
    preview: pa.Table | None = None
    unmatched: Mapping[str, int] = field(default_factory=dict)  # fact key column -> rows mapped to the unknown member
    inferred: Mapping[str, int] = field(default_factory=dict)  # dimension -> inferred members created
    written: tuple[str, ...] = ()  # tables this load committed to (a fact may also write inferred members)
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float | None = None

    def counted(self, counts: WriteCounts) -> LoadOutcome:
        """This outcome with the counts of a write step (its notes added to the outcome's)."""
        return replace(
            self,
            status=counts.status,
            inserted=counts.inserted,
            updated=counts.updated,
            soft_deleted=counts.soft_deleted,
            unchanged=counts.unchanged,
            replaced=counts.replaced,
            notes=self.notes + counts.notes,
        )

    def noted(self, *notes: str) -> LoadOutcome:
        return replace(self, notes=self.notes + notes)


def columns_of(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, str(f.type)) for f in schema)
