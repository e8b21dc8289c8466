"""Jobs over the asset graph.

Concurrency is a launchpad setting: ``execution.config.multiprocess.max_concurrent`` in the run
config (default below); each step's timeout is the run tag ``medallion/step_timeout_seconds``.
"""

import dagster as dg

from medallion_assets.curated.assets import ENTITY_TAG

DEFAULT_MAX_CONCURRENT = 4


def _parallel(max_concurrent: int = DEFAULT_MAX_CONCURRENT) -> dict:
    return {"execution": {"config": {"multiprocess": {"max_concurrent": max_concurrent}}}}


dimensions_selection = dg.AssetSelection.tag(ENTITY_TAG, "dimension")
facts_selection = dg.AssetSelection.tag(ENTITY_TAG, "fact") | dg.AssetSelection.tag(ENTITY_TAG, "bridge")

medallion_daily_job = dg.define_asset_job(
    name="medallion_daily",
    selection=dg.AssetSelection.all(),
    config=_parallel(),
    description="Everything for one day: landing, base, dimensions in parallel, then facts and bridges.",
)

landing_to_base_job = dg.define_asset_job(
    name="landing_to_base",
    selection=dg.AssetSelection.groups("landing", "base"),
    config=_parallel(),
    description="All landing and base assets for one partition.",
)

dimensions_job = dg.define_asset_job(
    name="dimensions",
    selection=dimensions_selection,
    config=_parallel(),
    description="Every dimension in parallel, at most max_concurrent at once, each step under a timeout.",
)

facts_job = dg.define_asset_job(
    name="facts",
    selection=facts_selection,
    config=_parallel(),
    description="Facts and bridges; run after the dimensions job.",
)


# Steps on celery workers (deploy/, README "Deploy"): the same graph as medallion_daily, each
# step a celery task. Defined only when dagster-celery is installed (the `deploy` extra).
CELERY_BROKER_ENV = "MEDALLION_CELERY_BROKER"
CELERY_BACKEND_ENV = "MEDALLION_CELERY_BACKEND"


def build_celery_jobs() -> list:
    """``medallion_daily_celery``: ``medallion_daily`` on ``dagster_celery.celery_executor``.

    Broker and result backend are read from the environment of the run process when a run
    starts (``MEDALLION_CELERY_BROKER``, ``MEDALLION_CELERY_BACKEND``), as the workers read them
    from ``deploy/celery.yaml``.
    """
    try:
        from dagster_celery import celery_executor
    except ImportError:
        return []
    execution = {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": CELERY_BACKEND_ENV}}
    return [
        dg.define_asset_job(
            name="medallion_daily_celery",
            selection=medallion_daily_job.selection,
            executor_def=celery_executor,
            config={"execution": {"config": execution}},
            description="medallion_daily with every step on a celery worker (see deploy/celery.yaml).",
        )
    ]
