import time

import dagster as dg
import duckdb
import pytest
from deltalake.exceptions import CommitFailedError

from medallion_assets.common.policies import (
    STEP_TIMEOUT_TAG,
    StepTimeout,
    guarded_step,
    is_transient,
    retry_policy,
    step_timeout,
)
from medallion_assets.engine.base.schema import BaseLoadError
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.policies import RetrySettings


@dg.asset
def slow(context: dg.AssetExecutionContext) -> None:
    with step_timeout(context, default=600):
        time.sleep(30)


@dg.asset
def quick() -> None:
    return None


@dg.asset(deps=[slow])
def after_slow() -> None:
    return None


def test_a_timed_out_step_fails_clearly_and_independent_steps_still_run():
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.monotonic()
        result = dg.materialize([slow, quick, after_slow], instance=instance, tags={STEP_TIMEOUT_TAG: "0.5"}, raise_on_error=False)
        assert time.monotonic() - started < 25  # the 30 s sleep was cut short
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "slow"
    assert "exceeded its timeout of 0.5 s" in str(failure.step_failure_data.error)
    # The independent step ran; the one downstream of the timed-out step did not.
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {dg.AssetKey("quick")}


attempts: list[int] = []


@dg.asset(retry_policy=retry_policy(RetrySettings(max_retries=2, delay_seconds=0)))
def flaky(context: dg.AssetExecutionContext) -> None:
    attempts.append(context.retry_number)
    with guarded_step(context):
        if context.retry_number == 0:
            raise ConnectionError("transient: source busy")


def test_a_transient_failure_succeeds_on_retry():
    attempts.clear()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([flaky], instance=instance)
    assert result.success and attempts == [0, 1]
    assert [e.event_type_value for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == ["STEP_UP_FOR_RETRY"]


@dg.asset(retry_policy=retry_policy(RetrySettings(max_retries=2, delay_seconds=0)))
def broken(context: dg.AssetExecutionContext) -> None:
    attempts.append(context.retry_number)
    with guarded_step(context):
        raise ValueError("permanent: bad input")


def test_a_deterministic_failure_fails_at_once_with_its_cause():
    attempts.clear()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success and attempts == [0]
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_failure_data.user_failure_data.description == "ValueError: permanent: bad input"


def _raised(make):
    """The exception ``make()`` raises, with its real chain."""
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - the point is to capture it
        return exc
    raise AssertionError("nothing raised")


def _wrapped(inner: Exception, outer: type[Exception]):
    def make():
        try:
            raise inner
        except Exception as exc:
            raise outer(f"wrapped: {exc}") from exc

    return make


def _duckdb(sql: str):
    return lambda: duckdb.connect().execute(sql)


def _hidden(inner: Exception):
    """An engine error raised ``from None`` over ``inner``: the engine decided it is final."""

    def make():
        try:
            raise inner
        except Exception:
            raise BaseLoadError("landing file x.csv: bad") from None

    return make


@pytest.mark.parametrize(
    ("make", "transient"),
    [
        (_duckdb("SELECT missing_column FROM range(1)"), False),  # binder error
        (_duckdb("SELEC 1"), False),  # parser error
        (_duckdb("SELECT CAST('x' AS INTEGER)"), False),  # conversion error
        (_duckdb("SELECT * FROM read_csv('/nonexistent/medallion/x.csv')"), True),  # I/O error
        (_wrapped(CommitFailedError("conflict"), CuratedError), True),  # a Delta commit lost a race
        (_wrapped(ConnectionResetError("reset by peer"), RuntimeError), True),
        (lambda: (_ for _ in ()).throw(StepTimeout("step x exceeded its timeout")), True),
        (lambda: (_ for _ in ()).throw(CuratedError("fact.sql: result column 'X' is not lower snake_case")), False),
        (lambda: open("/nonexistent/medallion/file"), False),  # FileNotFoundError: the same next time
        (_hidden(OSError("disk hiccup")), False),
        (lambda: {}["key"], False),  # a bug
    ],
)
def test_only_transient_errors_are_worth_a_retry(make, transient):
    assert is_transient(_raised(make)) is transient
