"""Float64 counters (GB·s, request duration) over a simulated hour of decimal values, late data included.

Integer fields equal the ground truth exactly. A float field is exported within a relative 2**-52
of the exact sum of the events' values: Cloudflare rounds each row it returns once (at most 2**-53
relative, the values being non-negative), and otelbridge sums those rows exactly and rounds once
more on export (2**-53). The bound does not grow with the number of rows, cycles or restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from fractions import Fraction

from otelbridge.bridge import Bridge
from otelbridge.catalogue import SourcedMetric
from otelbridge.clock import ManualClock
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Simulator, Traffic
from otelbridge.windows import MINUTE, floor_minute
from tests.datasets import WORKERS, workers
from tests.metrics_text import parse_prometheus

BOUND = Fraction(1, 2**52) + Fraction(1, 2**106)  # relative: 2**-53 twice, and their product
FLOATS = ("duration", "requestDuration")


def labels(account: str, script: str, status: str) -> tuple[tuple[str, str], ...]:
    attrs = {"cloud_account_id": account, "faas_name": script, "cloudflare_workers_status": status}
    return tuple(sorted(attrs.items()))


def within_bound(exported: float, exact: Fraction) -> bool:
    return abs(Fraction(exported) - exact) <= BOUND * exact


def per_minute_rows(
    traffic: Traffic, account: str, name: str, start: datetime, end: datetime, as_of: datetime
) -> dict[tuple[str, str], list[float]]:
    """What Cloudflare answers minute by minute: each row rounded once from its exact sum."""
    out: dict[tuple[str, str], list[float]] = {}
    minute = start
    while minute < end:
        for key, sums in traffic.exact_series_totals(account, minute, minute + MINUTE, as_of).items():
            out.setdefault(key, []).append(float(sums[name]))
        minute += MINUTE
    return out


async def test_decimal_float_sums_stay_within_the_bound_and_integers_are_exact(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 240
    sim.knobs.decimal_floats = True
    bridge = make_bridge()
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    for i in range(60):
        await bridge.poll_once()
        clock.advance(60)
        if i == 30:  # a restart half way: the exact sums go through the state file
            await bridge.close()
            bridge = make_bridge()
            await bridge.start()
    await bridge.poll_once()
    now = clock.now()
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    got = parse_prometheus(bridge.page.page.body.decode())
    counters: dict[str, SourcedMetric] = {c.field: c for c in workers(bridge.catalogue).counters}

    checked = naive_outside = order_dependent = 0
    for account in bridge.accounts:
        ints = sim.traffic.series_totals(account, start, end, as_of=now)
        exact = sim.traffic.exact_series_totals(account, start, end, as_of=now)
        for (script, status), sums in ints.items():
            series = labels(account, script, status)
            for field, c in counters.items():
                value = got[(prometheus_name(c.name, c.unit, True), series)]
                if field in FLOATS:
                    truth = exact[(script, status)][field] / c.divisor
                    assert within_bound(value, truth), (series, field, value, float(truth))
                    checked += 1
                else:
                    assert value == c.exported(sums[field]), (series, field)
        # The same rows summed naively, as floats in arrival order, and in the opposite order.
        for field in FLOATS:
            for key, rows in per_minute_rows(sim.traffic, account, field, start, end, now).items():
                forward = backward = 0.0
                for row in rows:
                    forward += row
                for row in reversed(rows):
                    backward += row
                order_dependent += forward != backward
                naive_outside += not within_bound(forward, exact[key][field])
    print(f"checked {checked}, order dependent {order_dependent}, naive outside {naive_outside}")
    # Cloudflare's data only grew: regrouped rows rounding a little lower are no revision.
    assert [s.ledgers[WORKERS].corrections for s in bridge.accounts.values()] == [0] * len(bridge.accounts)
    assert checked > 50
    assert order_dependent > 0, "the data must be able to show order-dependent rounding"
    assert naive_outside > 0, "a naive float sum must be seen to leave the bound"
