"""One account's cycle at its edges: when a failed account is tried again, what a budget error
holds back, an account without the dataset, and the budget spent on every page of an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, parse_prometheus
from tests.tamper import TamperProxy


def queries(sim: Simulator, kind: str) -> int:
    """GraphQL queries of one kind in the simulator's log: Workers data, or dataset Settings."""
    graphql = [e for e in sim.query_log if e.endpoint == "graphql"]
    return sum(1 for e in graphql if bool(e.datasets) == (kind == "Workers"))


def up(bridge: Bridge) -> list[bool]:
    return [s.up for s in bridge.accounts.values()]


async def started(bridge: Bridge, clock: ManualClock) -> None:
    await bridge.start()
    await bridge.poll_once()
    assert all(up(bridge))
    clock.advance(60)


async def test_a_failed_account_is_tried_again_at_the_very_next_poll(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    """After a transient failure there is no pause of its own: a catch-up poll a second later
    tries the account again."""
    bridge = make_bridge()
    await started(bridge, clock)
    sim.fail_next("server_error", count=3)  # every attempt of the first account
    await bridge.poll_once()
    assert up(bridge) == [False, True, True]
    clock.advance(1)
    sim.reset_log()
    await bridge.poll_once()
    assert queries(sim, "Workers") == 3
    assert all(up(bridge))


async def test_after_a_budget_error_no_account_is_touched_for_five_minutes(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    await started(bridge, clock)
    sim.fail_next("budget")
    await bridge.poll_once()
    assert not any(up(bridge))
    after_error = dict(bridge.outcomes)
    assert after_error["rate_limited"] == 1 and after_error["deferred"] == 2
    sim.reset_log()
    for _ in range(4):  # 4 more polls within Cloudflare's five minutes: nothing asked, nothing deferred
        clock.advance(60)
        await bridge.poll_once()
    assert dict(bridge.outcomes) == after_error
    assert not sim.query_log
    clock.advance(60)  # five minutes after the error
    await bridge.poll_once()
    assert all(up(bridge))
    assert bridge.outcomes["ok"] == after_error["ok"] + 3


async def test_a_query_is_deferred_while_the_budget_frees_in_under_a_second(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(rate_limit=6))  # settings + workers for 3 accounts
    await bridge.start()
    await bridge.poll_once()
    assert all(up(bridge)) and bridge.rate_limit_used() == 6
    clock.advance(299.5)  # the first query leaves the 5-minute window in half a second
    sim.reset_log()
    await bridge.poll_once()
    assert not sim.query_log and bridge.outcomes["deferred"] == 3
    clock.advance(1)
    await bridge.poll_once()
    assert all(up(bridge)) and queries(sim, "Workers") == 3


def disable_datasets(body: Any) -> Any:
    for node in body.get("data", {}).get("viewer", {}).get("accounts", []):
        for limits in node["settings"].values():
            limits["enabled"] = False
    return body


async def test_an_account_without_a_dataset_enabled_is_down_until_one_is(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    proxy = TamperProxy(sim.base_url)
    await proxy.start()
    try:
        bridge = make_bridge(make_config(api_url=proxy.base_url))
        proxy.rewrite_other = disable_datasets
        await bridge.start()
        for _ in range(2):  # the settings are read again on each try; no data is asked for
            sim.reset_log()
            await bridge.poll_once()
            assert not any(up(bridge))
            assert queries(sim, "Settings") == 3 and queries(sim, "Workers") == 0
            errors = {s.last_error for s in bridge.accounts.values()}
            names = ", ".join(d.dataset for d in bridge.datasets)
            assert errors == {f"NotAuthorized: {names}: not enabled for this account"}
            clock.advance(60)
        proxy.rewrite_other = None  # enabled on Cloudflare's side
        clock.advance(60)  # the second refusal backed the accounts off for two intervals
        await bridge.poll_once()
        assert all(up(bridge))
    finally:
        await proxy.stop()


async def test_every_page_of_an_answer_spends_the_budget(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.max_page_size = 12  # the bigger aliases need several pages
    bridge = make_bridge()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.start()
    await bridge.poll_once()
    graphql = [e for e in sim.query_log if e.endpoint == "graphql"]
    assert len(graphql) > 2 * len(bridge.accounts), "pages were followed"
    assert bridge.rate_limit_used() == len(graphql)
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    text = bridge.page.page.body.decode()
    assert {k: v for k, v in parse_prometheus(text).items() if k[0].endswith("_total")} == want
