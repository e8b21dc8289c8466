"""Concurrency pools: one per table, so Dagster itself keeps two runs off one table.

A pool is named after the table its asset writes (``base/erp_customer``,
``curated/dim_customer``, ``landing/erp_customer``). The instance gives every pool the limit in
``concurrency: pools: default_limit`` of its ``dagster.yaml`` (1 in ``deploy/dagster.yaml`` and
``.dagster_home/dagster.yaml``): a step waits for its table's slot whichever run or host it is on.
The engine's file lock (``engine/storage/files.py``) stays as the guard for the engine used without
Dagster on one host.
"""

import dagster as dg


def table_pool(key: dg.AssetKey) -> str:
    """The pool of the table behind ``key``: its key path joined by ``/``."""
    return "/".join(key.path)


def table_pools(defs: dg.Definitions) -> list[str]:
    """Every table pool of a code location, one per asset."""
    return sorted({table_pool(spec.key) for assets_def in defs.assets or [] for spec in assets_def.specs})


def initialize_pools(*, instance: dg.DagsterInstance, pools: list[str]) -> int | None:
    """Give every pool its row with the instance's ``default_limit``, one pool after another.

    Dagster creates a pool's row lazily, when a step first claims it; on PostgreSQL two steps
    doing that at the same moment make one fail ("duplicate key value violates unique constraint
    concurrency_limits_concurrency_key_key"). Creating the rows once, at deploy time, leaves
    nothing to create later. Returns the limit, or ``None`` when the instance sets no default.
    """
    limit = instance.global_op_concurrency_default_limit
    if limit is None:
        return None
    for pool in pools:
        instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
    return limit
