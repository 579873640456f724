"""Retries inside a cycle: one transient failure followed by success costs nothing but a retry;
failures that retrying cannot fix are not retried; a failing account is tried less and less often."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.poller import RetryPolicy
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import api_requests, expected_counters, parse_prometheus, self_metric
from tests.tamper import TamperProxy


def counters(bridge: Bridge) -> dict[Any, float]:
    text = bridge.page.page.body.decode()
    return {k: v for k, v in parse_prometheus(text).items() if k[0].endswith("_total")}


class Sleeps:
    """Records the backoff pauses instead of waiting them out."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


async def first_good_cycle(bridge: Bridge, clock: ManualClock) -> None:
    await bridge.start()
    await bridge.poll_once()
    assert all(s.up for s in bridge.accounts.values())
    clock.advance(60)


async def assert_exact(bridge: Bridge, sim: Simulator, clock: ManualClock) -> None:
    start = floor_minute(clock.now() - timedelta(seconds=60) - bridge.config.lookback)
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    assert end == floor_minute(clock.now() - bridge.config.delay), "the cycle counted up to now"
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    assert counters(bridge) == want


async def test_before_the_first_poll_every_account_is_down_with_no_poll_time(
    sim: Simulator, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(accounts=tuple(a.tag for a in sim.traffic.accounts)))
    assert (bridge.status()["series"], bridge.status()["series_dropped"]) == (0, 0)
    await bridge.start()
    bridge.page.render()  # as `otelbridge run` does before it starts polling
    text = bridge.page.page.body.decode()
    accounts = dict.fromkeys(bridge.accounts, 0.0)
    assert self_metric(text, "otelbridge_up", "cloud_account_id") == accounts
    assert self_metric(text, "otelbridge_poll_duration_seconds", "cloud_account_id") == accounts
    status = bridge.status()["accounts"]
    assert isinstance(status, dict)
    assert {a: (s["failures"], s["last_error"]) for a, s in status.items()} == dict.fromkeys(
        accounts, (0, None)
    )


TRANSIENT = {  # simulator fault -> the outcome it is counted as
    "server_error": "server_error",
    "data_null": "server_error",
    "reset": "connection",
    "malformed": "malformed",
    "html": "malformed",
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
async def test_one_transient_failure_is_retried_within_the_cycle(
    fault: str, sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sleeps = Sleeps()
    bridge = make_bridge(retry=RetryPolicy(attempts=3, backoff=2.0), sleep=sleeps)
    await first_good_cycle(bridge, clock)
    ok_before = bridge.outcomes["ok"]
    sim.fail_next(fault)  # type: ignore[arg-type]
    sim.reset_log()
    await bridge.poll_once()

    assert {a: (s.up, s.failures, s.last_error) for a, s in bridge.accounts.items()} == {
        a: (True, 0, "") for a in bridge.accounts
    }
    outcome = TRANSIENT[fault]
    assert bridge.outcomes[outcome] == 1
    assert bridge.outcomes["ok"] - ok_before == len(bridge.accounts)
    graphql = [e.outcome for e in sim.query_log if e.endpoint == "graphql"]
    assert len(graphql) == len(bridge.accounts) + 1, "exactly one request was repeated"
    assert api_requests(bridge.page.page.body.decode())[outcome] == 1, "the retried failure is on /metrics"
    assert len(sleeps.seen) == 1 and 1.0 <= sleeps.seen[0] <= 3.0, "one backoff of 2 s with ±50% jitter"
    durations = self_metric(
        bridge.page.page.body.decode(), "otelbridge_poll_duration_seconds", "cloud_account_id"
    )
    assert sorted(durations) == sorted(bridge.accounts)
    assert all(0 < d < 30 for d in durations.values()), "the seconds the last poll took, retry included"
    await assert_exact(bridge, sim, clock)


async def test_without_retries_the_same_failure_fails_the_cycle(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    """The counterpart of the test above: with one attempt the account is down for this cycle."""
    bridge = make_bridge(retry=RetryPolicy(attempts=1, backoff=0.0))
    await first_good_cycle(bridge, clock)
    sim.fail_next("server_error")
    assert await bridge.poll_once() is False, "a failed account is not 'behind': no immediate next cycle"
    assert sorted(s.up for s in bridge.accounts.values()) == [False, True, True]
    assert bridge.outcomes["server_error"] == 1


@pytest.mark.parametrize("failures", [2, 3])
async def test_an_account_gets_exactly_the_configured_attempts(
    failures: int, sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sleeps = Sleeps()
    bridge = make_bridge(retry=RetryPolicy(attempts=3, backoff=1.0), sleep=sleeps)
    await first_good_cycle(bridge, clock)
    sim.fail_next("server_error", count=failures)
    sim.reset_log()
    await bridge.poll_once()
    first = next(iter(bridge.accounts.values()))
    assert first.up is (failures < 3)
    assert [s.up for s in list(bridge.accounts.values())[1:]] == [True, True]
    assert bridge.outcomes["server_error"] == failures
    answered = [e.outcome for e in sim.query_log if e.endpoint == "graphql"]
    recovered = 1 if failures < 3 else 0
    assert answered == ["server_error"] * failures + ["ok"] * (recovered + 2)
    # Exponential backoff: 1 s then 2 s, each within ±50% jitter.
    assert len(sleeps.seen) == 2
    assert 0.5 <= sleeps.seen[0] <= 1.5 and 1.0 <= sleeps.seen[1] <= 3.0


FOREIGN = "0" * 32  # an account the credential may not read: every query is refused (authz)


async def tries_per_cycle(bridge: Bridge, sim: Simulator, clock: ManualClock, cycles: int) -> list[int]:
    """How many queries for the refused account each of `cycles` polls, one interval apart, made."""
    await bridge.start()
    tried = []
    for _ in range(cycles):
        sim.reset_log()
        await bridge.poll_once()
        tried.append(sum(1 for e in sim.query_log if e.account_tags == (FOREIGN,)))
        clock.advance(60)
    return tried


async def test_a_refused_account_is_not_retried_and_backs_off(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    tags = (*[a.tag for a in sim.traffic.accounts], FOREIGN)
    policy = RetryPolicy(attempts=3, max_backoff_cycles=4)
    bridge = make_bridge(make_config(accounts=tags), retry=policy)
    tried = await tries_per_cycle(bridge, sim, clock, 16)
    # One request per try (authz is never retried), tries after 1, 2, 4, then every 4 cycles.
    assert tried == [1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    state = bridge.accounts[FOREIGN]
    assert not state.up and state.failures == 6
    assert bridge.outcomes["authz"] == 6
    assert all(s.up for tag, s in bridge.accounts.items() if tag != FOREIGN)


async def test_by_default_a_failing_account_is_tried_at_least_every_16_intervals(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(accounts=(FOREIGN,)), retry=None)  # the production policy
    tried = await tries_per_cycle(bridge, sim, clock, 48)
    assert [i for i, n in enumerate(tried) if n] == [0, 1, 3, 7, 15, 31, 47]
    assert set(tried) == {0, 1}


async def test_by_default_three_attempts_with_backoff_doubling_from_one_second(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sleeps = Sleeps()
    bridge = make_bridge(retry=None, sleep=sleeps)  # the production policy
    await first_good_cycle(bridge, clock)
    sim.fail_next("server_error", count=9)
    await bridge.poll_once()
    assert not any(s.up for s in bridge.accounts.values())
    assert bridge.outcomes["server_error"] == 9, "three attempts for each of three accounts"
    # Two pauses per account: 1 s then 2 s, each ±50%. Six draws make a 2 s start all but certain to show.
    assert len(sleeps.seen) == 6
    for first, second in zip(sleeps.seen[::2], sleeps.seen[1::2], strict=True):
        assert 0.5 <= first <= 1.5 and 1.0 <= second <= 3.0


async def test_a_timeout_is_retried_within_the_cycle(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    proxy = TamperProxy(sim.base_url)
    await proxy.start()
    try:
        config = make_config(api_url=proxy.base_url, request_timeout=timedelta(seconds=1))
        bridge = make_bridge(config)
        await first_good_cycle(bridge, clock)
        proxy.stall_next, proxy.stall_seconds = 1, 2.5
        await bridge.poll_once()
        assert all(s.up and not s.failures for s in bridge.accounts.values())
        assert bridge.outcomes["timeout"] == 1
        assert api_requests(bridge.page.page.body.decode())["timeout"] == 1
        await assert_exact(bridge, sim, clock)
    finally:
        await proxy.stop()


async def test_the_jitter_spreads_each_pause_over_half_to_one_and_a_half_times_the_backoff(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sleeps = Sleeps()
    bridge = make_bridge(retry=RetryPolicy(attempts=3, backoff=1.0), sleep=sleeps)
    await first_good_cycle(bridge, clock)
    sim.knobs.server_error_probability = 1.0
    while len(sleeps.seen) < 240:  # two pauses per account and cycle: about 1 s, then about 2 s
        await bridge.poll_once()
        clock.advance(60)
    first, second = sleeps.seen[::2], sleeps.seen[1::2]
    assert all(0.5 <= s <= 1.5 for s in first) and all(1.0 <= s <= 3.0 for s in second)
    # Uniform draws: 120 all above 0.6 (or all below 1.4) happen about once in 150000 runs.
    assert min(first) < 0.6 and max(first) > 1.4 and max(second) > 2.0
