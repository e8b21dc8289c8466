"""What the multiprocess executor's forkserver imports once, before it forks one process per step.

Importing the code location and resolving its repository and jobs here means a forked step starts
with every definition already built, instead of building them again. Only imports and definition
building happen here: no Delta table is opened, because deltalake's tokio runtime does not
survive a fork (``medallion_assets_tests/test_definitions.py`` checks it).

What a step would otherwise import itself, measured with py-spy over the 17 steps of a sample day:
the instance's storage modules (SQLAlchemy, the run, event and schedule storages) and ``upath``,
whose import scans every installed package's entry points (fsspec), which each step needs to open
the instance from its ref: about 1.4 s of CPU per step; pandas, which pyarrow imports on a
step's first conversion from numpy, about 0.3 s; and pyarrow's dataset module.
"""

import contextlib

import dagster._core.storage.base_storage  # noqa: F401
import dagster._core.storage.local_compute_log_manager  # noqa: F401
import dagster._core.storage.sqlite_storage  # noqa: F401
import pandas  # noqa: F401
import pyarrow.dataset  # noqa: F401
import upath  # noqa: F401

from medallion_assets.definitions import defs

with contextlib.suppress(ImportError):  # a deployment's instance storage (deploy/dagster.yaml)
    import dagster_postgres  # noqa: F401

    import medallion_assets.common.instance_storage  # noqa: F401

# Resolving is the point: the repository and its jobs are cached on ``defs`` for the forks.
RESOLVED_JOBS = tuple(job.name for job in defs.get_repository_def().get_all_jobs())
