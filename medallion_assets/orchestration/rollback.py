"""The ``rollback_run`` job: undo the Delta commits of one finished run, launched from the UI.

Give the run id in the launchpad::

    ops:
      rollback_delta_tables:
        config:
          run_id: "<id of the bad run>"

Every table the run wrote (base, curated, and the base engine's ``_state``/``_quarantine``
companions) goes back to the version it had before the run, through Delta's own ``restore``,
which is a new commit: nothing is deleted and history keeps both. Tables the run did not write
are untouched; running the rollback again restores nothing.

Limitations (see ``medallion_assets.engine.storage.rollback``): the run's commits are found by its
start/end time, so a concurrent run writing the same table in that window is undone too; a table
the run created has no earlier version and is left as it is (reported as ``created_by_run``, never
deleted); commits made after the run would be undone as well, so such tables are refused unless
``undo_later_commits`` is set.
"""

from datetime import UTC, datetime

import dagster as dg

from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.serving import refresh_serving_views
from medallion_assets.engine.storage.rollback import (
    TableRollback,
    blocked_by_later_commits,
    execute_rollback,
    plan_rollback,
)


class RollbackConfig(dg.Config):
    run_id: str
    """The run to undo; it must have finished (succeeded, failed or canceled)."""
    undo_later_commits: bool = False
    """Also undo commits made after that run to the tables it wrote (otherwise refuse)."""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def run_window(instance: dg.DagsterInstance, run_id: str) -> tuple[datetime, datetime] | None:
    """The [start, end] of a finished run (naive UTC); ``None`` when it never started."""
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise dg.Failure(description=f"no run with id {run_id!r} in this Dagster instance")
    run = record.dagster_run
    if not run.is_finished:
        raise dg.Failure(description=f"run {run_id} is {run.status.value}; wait until it finishes before rolling it back")
    if record.start_time is None:
        return None
    if record.end_time is not None:
        end = record.end_time
    else:  # finished without an end event (e.g. canceled): its last update bounds its writes
        updated = record.update_timestamp
        end = (updated if updated.tzinfo else updated.replace(tzinfo=UTC)).timestamp()
    return _utc(record.start_time), _utc(end)


def _asset_key(result: TableRollback) -> dg.AssetKey:
    """Companion tables (``base/_state``, ``base/_quarantine``) are reported on their base asset."""
    return dg.AssetKey([result.plan.layer.split("/")[0], result.plan.table])


def _observation(result: TableRollback, run_id: str, **metadata: object) -> dg.AssetObservation:
    """What the rollback did to one table, recorded on its asset."""
    return dg.AssetObservation(
        asset_key=_asset_key(result), metadata={"run_id": run_id, "delta_table": result.plan.name, **metadata}
    )


@dg.op(description="Restore every Delta table a finished run wrote to its version before that run.")
def rollback_delta_tables(context: dg.OpExecutionContext, config: RollbackConfig, lakehouse: LakehouseResource):
    if config.run_id == context.run_id:
        raise dg.Failure(description="a rollback run cannot roll itself back")
    window = run_window(context.instance, config.run_id)
    if window is None:
        context.log.info(f"run {config.run_id} never started; nothing to restore")
        yield dg.Output(0)
        return
    start, end = window
    plans = plan_rollback(lakehouse.root, start, end)
    blocked = blocked_by_later_commits(plans)
    if blocked and not config.undo_later_commits:
        names = ", ".join(f"{p.name} ({p.later_commits} later commit(s))" for p in blocked)
        raise dg.Failure(
            description=f"tables written after run {config.run_id}; nothing restored. Set undo_later_commits "
            f"to undo those commits too: {names}"
        )
    results = execute_rollback(plans, undo_later_commits=config.undo_later_commits)
    for result in results:
        plan = result.plan
        if plan.action == "already_restored":
            context.log.info(f"{plan.name}: already at version {plan.version_before}'s content; nothing to do")
            continue
        if plan.action == "created_by_run":
            context.log.warning(
                f"{plan.name}: created by run {config.run_id} (versions {list(plan.run_versions)}); left as it is, not deleted"
            )
            yield _observation(result, config.run_id, created_by_run=True, version_current=plan.current_version, commits_undone=0)
            continue
        if result.error:
            context.log.error(f"{plan.name}: restore to version {plan.version_before} failed: {result.error}")
            continue
        context.log.info(
            f"{plan.name}: restored to version {plan.version_before} as version {result.version_after}, "
            f"{plan.commits_undone} commit(s) of run {config.run_id} undone"
        )
        yield _observation(
            result,
            config.run_id,
            version_before=plan.version_before,
            version_after_restore=result.version_after,
            commits_undone=plan.commits_undone,
            created_by_run=False,
        )
    restored = [r for r in results if r.restored]
    if restored:
        database = refresh_serving_views(lakehouse.root)
        context.log.info(f"{len(restored)} table(s) restored; serving views refreshed in {database}")
    else:
        context.log.info(f"run {config.run_id}: nothing to restore")
    failed = [r for r in results if r.error]
    if failed:
        raise dg.Failure(
            description="some tables could not be restored: "
            + "; ".join(f"{r.plan.name}: {r.error}" for r in failed)
        )
    yield dg.Output(len(restored))


@dg.job(name="rollback_run", description="Undo a run: restore the Delta tables it wrote to their versions before it.")
def rollback_job():
    rollback_delta_tables()
