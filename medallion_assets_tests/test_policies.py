import time

import dagster as dg

from medallion_assets.engine.policies import RetrySettings
from medallion_assets.policies import STEP_TIMEOUT_TAG, retry_policy, step_timeout


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
    raise ValueError("permanent: bad input")


def test_a_permanent_failure_fails_after_the_configured_attempts_with_its_cause():
    attempts.clear()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success and attempts == [0, 1, 2]
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "permanent: bad input" in str(failure.step_failure_data.error)
