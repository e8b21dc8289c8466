"""Run policies declared in metadata: retries and step timeouts, with defaults in one place."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medallion_assets.engine.metadata import StrictModel


class RetrySettings(StrictModel):
    """How a failed step is retried: ``max_retries`` more attempts, waiting ``delay_seconds``
    (growing exponentially or linearly with each attempt), with random jitter so that parallel
    steps that failed together do not retry in lockstep."""

    max_retries: int = Field(default=2, ge=0, le=20)
    delay_seconds: float = Field(default=5.0, ge=0, le=3600)
    backoff: Literal["exponential", "linear", "none"] = "exponential"
    jitter: Literal["full", "plus_minus", "none"] = "plus_minus"


DEFAULT_RETRY = RetrySettings()
DEFAULT_STEP_TIMEOUT_SECONDS = 1800
