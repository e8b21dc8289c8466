"""Dagster forms of the run policies in ``engine/policies.py``: retry policies, step timeouts,
and which failures are worth a retry.

Every layer's asset factory runs its body under :func:`guarded_step`: the step's timeout, and
deterministic errors failing at once. Only transient failures go to the asset's retry policy:
I/O and network errors, Delta commit conflicts, database connection and lock errors, timeouts.
Everything else (bad metadata, SQL, binder and type errors, invalid input, bugs) fails the same
way on every attempt, so it fails once with :class:`dagster.Failure` ``allow_retries=False``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from deltalake.exceptions import CommitFailedError

from medallion_assets.engine.memory import STEPS_AT_ONCE_ENV
from medallion_assets.engine.policies import DEFAULT_RETRY, DEFAULT_STEP_TIMEOUT_SECONDS, RetrySettings

STEP_TIMEOUT_TAG = "medallion/step_timeout_seconds"


class StepTimeout(TimeoutError):
    """A step ran past its timeout."""


# OSErrors that say the same thing on every attempt.
_PERSISTENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
# Class names that mean "try again" in any database driver: DB-API's OperationalError (lost
# connections, locks, I/O; DuckDB's IOException, TransactionException...) and SQLAlchemy's
# DisconnectionError. Matched by name so no driver has to be installed.
_TRANSIENT_CLASS_NAMES = frozenset({"OperationalError", "DisconnectionError"})


def _causes(exc: BaseException):
    """``exc`` and the exceptions it was raised from (``from None`` cuts the chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | ConnectionError | CommitFailedError):
        return True
    if isinstance(exc, OSError):
        return not isinstance(exc, _PERSISTENT_OS_ERRORS)
    return any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(exc).__mro__)


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt can succeed.

    An exception that states it (a boolean ``transient`` attribute, as the engine's source errors
    carry) decides for the errors it was raised from; otherwise ``exc`` is transient when it, or
    an exception it was raised from, is."""
    for cause in _causes(exc):
        stated = getattr(cause, "transient", None)
        if isinstance(stated, bool):
            return stated
        if _is_transient_one(cause):
            return True
    return False


@contextmanager
def deterministic_errors_fail_once() -> Iterator[None]:
    """Let transient errors through to the retry policy; fail deterministic ones without retries."""
    try:
        yield
    except (dg.Failure, dg.RetryRequested):
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(
            description=f"{type(exc).__name__}: {exc}",
            metadata={"retried": dg.MetadataValue.text("no: a deterministic error fails the same way on every attempt")},
            allow_retries=False,
        ) from exc


def retry_policy(settings: RetrySettings | None = None) -> dg.RetryPolicy:
    settings = settings or DEFAULT_RETRY
    backoff = {"exponential": dg.Backoff.EXPONENTIAL, "linear": dg.Backoff.LINEAR, "none": None}[settings.backoff]
    jitter = {"full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS, "none": None}[settings.jitter]
    return dg.RetryPolicy(max_retries=settings.max_retries, delay=settings.delay_seconds, backoff=backoff, jitter=jitter)


def step_timeout_seconds(context: dg.AssetExecutionContext, default: float | None = None) -> float:
    """The run tag ``medallion/step_timeout_seconds`` (settable in the launchpad), else the default."""
    tag = context.run.tags.get(STEP_TIMEOUT_TAG)
    if tag:
        try:
            return float(tag)
        except ValueError:
            raise dg.Failure(f"run tag {STEP_TIMEOUT_TAG}={tag!r} is not a number of seconds") from None
    return float(default if default is not None else DEFAULT_STEP_TIMEOUT_SECONDS)


@contextmanager
def guarded_step(context: dg.AssetExecutionContext, timeout_seconds: float | None = None) -> Iterator[None]:
    """The body of every asset: under its step timeout, deterministic errors not retried."""
    share_memory_with_other_steps(context)
    with deterministic_errors_fail_once(), step_timeout(context, timeout_seconds):
        yield


DEFAULT_STEPS_AT_ONCE = 4  # the multiprocess executor's max_concurrent in the project's jobs


def share_memory_with_other_steps(context: dg.AssetExecutionContext) -> None:
    """Tell the engine's memory budget how many steps of this run share the host: the multiprocess
    executor's ``max_concurrent``. Only in a step process of that executor (a child started by
    ``multiprocessing``), so the variable lives and dies with the step; in process, steps run one at
    a time and the default (1) holds. An operator's own ``MEDALLION_STEPS_AT_ONCE`` wins (celery or
    Kubernetes workers set it to their concurrency)."""
    if STEPS_AT_ONCE_ENV in os.environ or multiprocessing.parent_process() is None:
        return
    execution = (context.run.run_config or {}).get("execution") or {}
    config = execution.get("config", execution) if isinstance(execution, dict) else {}
    multiprocess = config.get("multiprocess", config) if isinstance(config, dict) else {}
    steps = multiprocess.get("max_concurrent", DEFAULT_STEPS_AT_ONCE) if isinstance(multiprocess, dict) else None
    os.environ[STEPS_AT_ONCE_ENV] = str(int(steps or 0) or os.cpu_count() or 1)


@contextmanager
def step_timeout(context: dg.AssetExecutionContext, default: float | None = None) -> Iterator[None]:
    """Fail the step if its body runs longer than the timeout.

    Dagster bounds whole runs only. Each step of the multiprocess executor runs in its own
    process, whose main thread gets a SIGALRM; the exception it raises fails just this step, and
    the steps that do not depend on it go on. Off the main thread (in-process threads) the body
    runs without a timeout.
    """
    seconds = step_timeout_seconds(context, default)
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum, frame):
        raise StepTimeout(f"step {context.op_execution_context.op.name} exceeded its timeout of {seconds:g} s ({STEP_TIMEOUT_TAG})")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
