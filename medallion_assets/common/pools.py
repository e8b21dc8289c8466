"""Concurrency pools: one per table, so Dagster itself keeps two runs off one table.

A pool is named after the table its asset writes (``base/erp_customer``,
``curated/dim_customer``, ``landing/erp_customer``). The instance gives every pool the limit in
``concurrency: pools: default_limit`` of its ``dagster.yaml`` (1 in ``deploy/dagster.yaml`` and
``.dagster_home/dagster.yaml``): a step waits for its table's slot whichever run or host it is on.
The engine's file lock (``engine/files.py``) stays as the guard for the engine used without
Dagster on one host.
"""

import dagster as dg


def table_pool(key: dg.AssetKey) -> str:
    """The pool of the table behind ``key``: its key path joined by ``/``."""
    return "/".join(key.path)
