"""The query budget: otelbridge paces itself under Cloudflare's limit and shows what it spent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, parse_prometheus
from tests.tamper import TamperProxy


def window_counts(sim: Simulator) -> int:
    """The most GraphQL requests the simulator saw in any 5-minute window."""
    times = sorted(e.time for e in sim.query_log if e.endpoint == "graphql")
    return max(
        (sum(1 for t in times if start <= t < start + timedelta(minutes=5)) for start in times), default=0
    )


async def test_a_small_budget_is_never_exceeded_and_totals_still_converge(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.rate_limit = True
    sim.knobs.rate_limit_queries = 8  # Cloudflare's side of the same budget
    config = make_config(rate_limit=8)
    start = floor_minute(clock.now() - config.lookback)
    bridge = make_bridge(config)
    await bridge.start()
    for _ in range(20):
        await bridge.poll_once()
        clock.advance(60)
    assert window_counts(sim) <= 8
    assert not [e for e in sim.query_log if e.outcome == "budget"], "we never ran into Cloudflare's limit"
    assert bridge.outcomes["deferred"] > 0
    await bridge.poll_once()  # the page now shows the budget as of this moment
    text = bridge.page.page.body.decode()
    used = parse_prometheus(text, prefix="otelbridge_ratelimit_used")
    assert list(used.values()) == [float(bridge.rate_limit_used())] and bridge.rate_limit_used() > 0

    # With the pressure off, every account catches up and the totals are exact.
    sim.knobs.rate_limit = False
    clock.advance(300)
    bridge.budget.limit = 300
    await bridge.poll_once()
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    assert all(s.ledgers[WORKERS].counted == end for s in bridge.accounts.values())
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    got = {
        k: v for k, v in parse_prometheus(bridge.page.page.body.decode()).items() if k[0].endswith("_total")
    }
    assert got == want


async def test_account_based_mode_sends_the_header_and_budgets_per_account(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    proxy = TamperProxy(sim.base_url)
    await proxy.start()
    bridge = make_bridge(make_config(account_based_rate_limit=True, rate_limit=2, api_url=proxy.base_url))
    await bridge.start()
    await bridge.poll_once()  # settings + workers: two queries per account, each on its own budget
    assert all(s.up for s in bridge.accounts.values())
    assert len({id(s.budget) for s in bridge.accounts.values()}) == len(bridge.accounts)
    assert bridge.rate_limit_used() == 2 * len(bridge.accounts)
    assert proxy.headers_seen
    assert all(h.get("X-Rate-Limit-Type") == "account-based" for h in proxy.headers_seen)
    await proxy.stop()
