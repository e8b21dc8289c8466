"""Landing -> Base: the metadata-driven load engine (plain Python, no Dagster).

``load_partition(table, data_dir, partition_date)`` is the entry point; ``history.plan`` /
``history.build_history`` are the pure, Arrow-in Arrow-out SCD computations it is built on.
"""

from medallion_assets.engine.base.history import HistorySpec, build_history, current_rows, plan
from medallion_assets.engine.base.load import load_partition, quarantine_path, state_path, table_path
from medallion_assets.engine.base.model import BaseTable, load_base_file, load_base_tables
from medallion_assets.engine.base.reader import Extract
from medallion_assets.engine.base.schema import BaseLoadError, SchemaError

__all__ = [
    "BaseLoadError",
    "BaseTable",
    "Extract",
    "HistorySpec",
    "SchemaError",
    "build_history",
    "current_rows",
    "load_base_file",
    "load_base_tables",
    "load_partition",
    "plan",
    "quarantine_path",
    "state_path",
    "table_path",
]
