"""What the multiprocess executor's forkserver imports once, before it forks one process per step.

Importing the code location and resolving its repository and jobs here means a forked step starts
with every definition already built, instead of building them again. Only imports and definition
building happen here: no Delta table is opened, because deltalake's tokio runtime does not
survive a fork (``medallion_assets_tests/test_definitions.py`` checks it).
"""

# pyarrow imports pandas on a step's first conversion from numpy (``pa.array``), about 0.3 s of
# every step's time when the fork does not hold it already.
import pandas  # noqa: F401

from medallion_assets.definitions import defs

# Resolving is the point: the repository and its jobs are cached on ``defs`` for the forks.
RESOLVED_JOBS = tuple(job.name for job in defs.get_repository_def().get_all_jobs())
