"""Two simulated hours of everything going wrong at once; every series ends exactly at Cloudflare's."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, parse_prometheus

OUTAGES = (range(30, 40), range(80, 90))  # minutes of the run when the API is unreachable
RESTARTS = (50, 100)


async def test_soak_two_hours_of_faults_outages_restarts_and_late_data(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    wall = time.perf_counter()
    rng = random.Random(2026)
    sim.knobs.ingestion_delay = 8 * 60
    sim.knobs.server_error_probability = 0.05
    sim.knobs.malformed_probability = 0.01
    config = make_config(
        delay=timedelta(minutes=3), settle=timedelta(minutes=10), lookback=timedelta(minutes=15)
    )
    start = floor_minute(clock.now() - config.lookback)
    bridge = make_bridge(config)
    await bridge.start()
    outcomes: Counter[str] = Counter()
    budget_errors = 0
    for minute in range(120):
        in_outage = any(minute in o for o in OUTAGES)
        sim.clear_faults()
        if in_outage:
            sim.fail_next("reset", count=1000, endpoint="any")
        elif rng.random() < 0.10:
            sim.fail_next("budget")
            budget_errors += 1
        if minute in RESTARTS:
            outcomes.update(bridge.outcomes)
            bridge = make_bridge(config)  # the old process is gone; only its state file remains
            await bridge.start()
        await bridge.poll_once()
        clock.advance(60)

    # Faults end; two clean cycles let the bridge catch up, then compare every series.
    sim.clear_faults()
    sim.knobs.server_error_probability = sim.knobs.malformed_probability = 0
    clock.advance(300)  # a budget error asks for five minutes
    await bridge.poll_once()
    clock.advance(60)
    await bridge.poll_once()
    outcomes.update(bridge.outcomes)

    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    assert end == floor_minute(clock.now() - config.delay)
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    got = {
        k: v for k, v in parse_prometheus(bridge.page.page.body.decode()).items() if k[0].endswith("_total")
    }
    assert got == want
    assert outcomes["connection"] > 0 and outcomes["server_error"] > 0 and outcomes["rate_limited"] > 0
    print(
        f"\nsoak: {(end - start) / timedelta(minutes=1):.0f} minutes counted, {len(got)} series exact; "
        f"budget errors injected {budget_errors}; outcomes {dict(sorted(outcomes.items()))}; "
        f"{time.perf_counter() - wall:.1f}s wall"
    )
