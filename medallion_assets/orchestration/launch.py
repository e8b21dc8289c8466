"""Runs of the code location launched from a command, the way the daemon launches queued runs.

``medallion run`` and ``medallion demo`` start the code location (``medallion_assets``, as in
``workspace.yaml``) in a code server, create each run from the job as that server reports it, and
hand it to the instance's run launcher. The run then carries its code location: the UI lists it
under the location, shows it on the Overview timeline and can re-execute it, exactly as for a run
launched from the UI or by the daemon. (A run executed with ``execute_job`` in the command's own
process has no code location, and the timeline leaves it out.)

Dagster has no public call for this outside its webserver, daemon and ``dagster job launch``; the
few internal ones used here are those that command uses, kept in this one module. The run
coordinator (a queue the daemon drains) is bypassed with ``launch_run``, as the daemon does once
a run leaves the queue, so no daemon need be running.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.remote_representation.external import RemoteJob, RemoteRepository
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._utils.error import SerializableErrorInfo

from medallion_assets.engine.metadata import MetadataError

LOCATION_NAME = "medallion_assets"
DEFINITIONS_MODULE = "medallion_assets.definitions"
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    success: bool
    materializations: list[dg.AssetMaterialization]
    failed_steps: tuple[str, ...]
    step_errors: tuple[tuple[str, str], ...] = ()  # (step key, the error's message) per failure


def error_message(error: SerializableErrorInfo | None) -> str:
    """The message a user needs from a Dagster error: the innermost cause raised by the code
    (Dagster's wrappers around it dropped), its first line, without class name or traceback."""
    if error is None:
        return "unknown error"
    suffix = ""
    if error.message.startswith("Exceeded max_retries") and error.cause is not None:  # the retry policy gave up
        suffix = f" (failed again after {error.message.strip().rsplit(' ', 1)[-1]} retries)"
        error = error.cause
    return _first_line(_innermost(error)) + suffix


def _first_line(error: SerializableErrorInfo) -> str:
    first = error.message.strip().split("\n", 1)[0]
    head, separator, rest = first.partition(": ")
    if separator and error.cls_name and head.rsplit(".", 1)[-1] == error.cls_name:  # "module.Class: message"
        first = rest
    return first or error.cls_name or "unknown error"


def _innermost(error: SerializableErrorInfo) -> SerializableErrorInfo:
    while error.cause is not None and error.cls_name in _WRAPPERS:
        error = error.cause
    return error


_WRAPPERS = {  # Dagster's errors around the one the code raised
    "Failure", "DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError",
    "DagsterUserCodeLoadError", "DagsterImportError", "DagsterUserCodeProcessError",
}


@contextmanager
def code_location_launcher(instance: dg.DagsterInstance, *, output: Path | None = None) -> Iterator[Callable[..., FinishedRun]]:
    """``run(job_name, run_config=..., tags=...)``: launches one run of the code location's job
    and waits for it to finish. The code server lives as long as the context. With ``output``,
    what the code server and the runs it starts print (step logs, tracebacks) is appended to that
    file instead of this terminal; the instance keeps every event as always."""
    target = ModuleTarget(module_name=DEFINITIONS_MODULE, attribute=None, working_directory=None, location_name=LOCATION_NAME)
    with _children_write_to(output):  # the code server starts here and keeps these streams
        process_context = WorkspaceProcessContext(instance, target, code_server_log_level="WARNING")
    with process_context:
        workspace = process_context.create_request_context()
        if workspace.has_code_location_error(LOCATION_NAME):
            error = workspace.get_code_location_error(LOCATION_NAME)
            if _innermost(error).cls_name == MetadataError.__name__:  # the user's metadata: its one line
                raise MetadataError(error_message(error))
            raise RuntimeError(f"code location {LOCATION_NAME!r} failed to load: {error}")
        location = workspace.get_code_location(LOCATION_NAME)
        (repository,) = location.get_repositories().values()

        def run(job_name: str, *, run_config: Mapping[str, object], tags: Mapping[str, str]) -> FinishedRun:
            job = repository.get_full_job(job_name)
            dagster_run = _create_run(instance, location=location, repository=repository, job=job, run_config=run_config, tags=tags)
            instance.launch_run(dagster_run.run_id, workspace)
            try:
                return _wait(instance, dagster_run.run_id)
            except KeyboardInterrupt:
                instance.run_launcher.terminate(dagster_run.run_id)
                raise

        yield run


@contextmanager
def _children_write_to(path: Path | None) -> Iterator[None]:
    """Processes started inside the context inherit ``path`` as their stdout and stderr."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with open(path, "ab", buffering=0) as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _create_run(
    instance: dg.DagsterInstance,
    *,
    location: CodeLocation,
    repository: RemoteRepository,
    job: RemoteJob,
    run_config: Mapping[str, object],
    tags: Mapping[str, str],
) -> dg.DagsterRun:
    plan = location.get_execution_plan(job, run_config, step_keys_to_execute=None, known_state=None, instance=instance)
    snapshot = plan.execution_plan_snapshot
    return instance.create_run(
        job_name=job.name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=snapshot.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **tags},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=snapshot,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )


def _wait(instance: dg.DagsterInstance, run_id: str) -> FinishedRun:
    while True:
        dagster_run = instance.get_run_by_id(run_id)
        if dagster_run is not None and dagster_run.is_finished:
            break
        time.sleep(POLL_SECONDS)
    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_FAILURE}
    events = [entry.dagster_event for entry in instance.all_logs(run_id, of_type=kinds) if entry.dagster_event]
    materialized = [e.event_specific_data.materialization for e in events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]
    failures = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE and e.step_key]
    return FinishedRun(
        run_id=run_id,
        success=dagster_run.status == dg.DagsterRunStatus.SUCCESS,
        materializations=materialized,
        failed_steps=tuple(e.step_key for e in failures),
        step_errors=tuple((e.step_key, error_message(e.event_specific_data.error)) for e in failures),
    )
