"""Dagster forms of the run policies in ``engine/policies.py``: retry policies and step timeouts."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from medallion_assets.engine.policies import DEFAULT_RETRY, DEFAULT_STEP_TIMEOUT_SECONDS, RetrySettings

STEP_TIMEOUT_TAG = "medallion/step_timeout_seconds"


class StepTimeout(Exception):
    """A step ran past its timeout."""


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
