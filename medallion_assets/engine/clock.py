"""The engine's wall clock: naive UTC, as every ``lh_`` timestamp and watermark is stored."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now(*, whole_seconds: bool = False) -> datetime:
    """Now in UTC without a time zone; ``whole_seconds`` drops the microseconds (extract clocks)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=0) if whole_seconds else now
