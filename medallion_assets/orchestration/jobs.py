"""Jobs over the asset graph.

Every job's default run config (what the launchpad, schedules, sensors and the daemon use) runs
steps on the multiprocess executor with the ``forkserver`` start method: one server process
imports the code location once (``PRELOAD_MODULES``), and every step is a fork of it, so a step
starts in milliseconds instead of importing the project again in a fresh interpreter.
deltalake's tokio runtime does not survive a fork, so the preloaded modules only import and
build definitions; no Delta table is opened in the forkserver (a test holds this).

Concurrency is a launchpad setting: ``execution.config.multiprocess.max_concurrent`` (default
below); each step's timeout is the run tag ``medallion/step_timeout_seconds``.
"""

import dagster as dg

from medallion_assets.common.policies import DEFAULT_STEPS_AT_ONCE
from medallion_assets.curated.assets import ENTITY_TAG

DEFAULT_MAX_CONCURRENT = DEFAULT_STEPS_AT_ONCE  # the memory budget divides by the same number
# Builds the code location and resolves its jobs once, in the forkserver; nothing else.
PRELOAD_MODULES = ("medallion_assets.preload",)


def multiprocess_run_config(*, max_concurrent: int = DEFAULT_MAX_CONCURRENT, start_method: str = "forkserver") -> dict:
    """The ``execution`` part of a run config for the multiprocess executor (the jobs' default).

    ``start_method="spawn"`` gives Dagster's default (every step a fresh interpreter)."""
    start = {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}} if start_method == "forkserver" else {start_method: {}}
    return {"execution": {"config": {"multiprocess": {"max_concurrent": max_concurrent, "start_method": start}}}}


def _parallel() -> dict:
    return multiprocess_run_config()


def build_project_executor() -> dg.ExecutorDefinition:
    """Dagster's default executor (multiprocess or in-process by config) whose config, when a run
    gives none, is ``multiprocess_run_config()``: the forkserver with the code location preloaded.

    Set once on the code location, so runs launched without run config (the asset graph's
    Materialize button, GraphQL launches, asset backfills) start their steps as cheaply as the
    jobs do. The config schema is Dagster's own, so a launchpad may still pick ``in_process``,
    ``spawn`` or another ``max_concurrent``.
    """
    default = dg.multi_or_in_process_executor
    return dg.ExecutorDefinition(
        name=default.name,
        config_schema=dg.Field(
            default.config_schema.as_field().config_type,
            default_value=multiprocess_run_config()["execution"]["config"],
            is_required=False,
        ),
        requirements=default.get_requirements,
        executor_creation_fn=default.executor_creation_fn,
        description="Steps in processes forked from a server that preloaded the code location.",
    )


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


# Steps on celery workers (deploy/, docs/operations.md "Deploy"): the same graph as medallion_daily, each
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
