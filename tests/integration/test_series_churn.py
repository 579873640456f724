"""Scripts come and go (as Workers for Platforms accounts do): gone series leave the export, the
ledger and the SDK's storage; live ones are never folded into overflow; idle ones keep their value
for idle_series_ttl. Driven through the real ledger, snapshot, MeterProvider and /metrics page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from otelbridge import sdk_storage, snapshot, telemetry
from otelbridge.bridge import Bridge
from otelbridge.catalogue import load
from otelbridge.clock import ManualClock
from otelbridge.cloudflare.answers import QuantileRow
from otelbridge.config import Config
from otelbridge.exposition import MetricsPage
from otelbridge.ledger import Ledger, Rows
from otelbridge.simulator import Simulator
from otelbridge.windows import MINUTE, Timing, floor_minute, plan
from tests.datasets import WORKERS, workers
from tests.metrics_text import expected_counters, parse_prometheus

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
ACCOUNT = "a" * 32
PER_ROUND = 2000  # new scripts each round; the previous round's go idle
ROUND = timedelta(minutes=40)
TTL = timedelta(hours=1)  # so a round's scripts are idle but exported one round later, gone two later
BACK = 100  # scripts of the first round that run again in round 7
MAX_SERIES = 2 * PER_ROUND + BACK
QUANTILES = ("0.99",)
TIMING = Timing(delay=MINUTE, settle=timedelta(minutes=5), quantile_window=timedelta(minutes=5))
CATALOGUE = load()
WORKERS_CATALOGUE = workers(CATALOGUE)
REQUESTS = "cloudflare_workers_requests_total"
INVOCATION = "cloudflare_workers_invocation_"


def vector(requests: int) -> tuple[float, ...]:
    return tuple(requests if c.field != "duration" else requests * 0.1 for c in WORKERS_CATALOGUE.counters)


def quantile_row() -> QuantileRow:
    w = WORKERS_CATALOGUE
    values = {w.quantile_field(g, q): 1000.0 for g in w.quantile_gauges for q in QUANTILES}
    return QuantileRow(values, {a.field: 1.0 for a in w.average_gauges})


def requests_by_script(body: bytes) -> dict[str, float]:
    """The requests counter by script, from the page's requests family only (the parser is slow)."""
    lines = [line for line in body.decode().splitlines() if line.startswith(REQUESTS)]
    parsed = parse_prometheus("\n".join(lines) + "\n")
    return {dict(labels)["faas_name"]: value for (_, labels), value in parsed.items()}


def test_churning_scripts_never_overflow_and_their_storage_is_released() -> None:
    current = [snapshot.EMPTY]
    page = MetricsPage(telemetry.cardinality_limits(MAX_SERIES))
    provider = telemetry.meter_provider([page.reader], CATALOGUE, lambda: current[0], telemetry.resource("t"))
    floats = ("duration", "requestDuration")
    ledger = Ledger.starting_at(WORKERS_CATALOGUE.fields, T0, floats)
    ledger.idle_ttl = TTL
    exported: list[dict[str, float]] = []
    try:
        for r in range(10):
            active = [f"wfp-{r:02d}-{i:04d}" for i in range(PER_ROUND)]
            returning = [f"wfp-00-{i:04d}" for i in range(BACK)] if r == 7 else []
            now = T0 + ROUND * (r + 1)
            p = plan(now, ledger.settled, ledger.counted, TIMING)
            settling: Rows = {(s, "success"): vector(3) for s in active + returning}
            open_rows: Rows = {(s, "success"): vector(2) for s in active + returning}
            ledger.apply(p, settling, open_rows)
            gauges = {WORKERS: {(s,): quantile_row() for s in active}}
            health = {ACCOUNT: snapshot.AccountHealth(True, 0.1, gauges)}
            current[0] = snapshot.build(
                CATALOGUE, QUANTILES, {ACCOUNT: {WORKERS: ledger}}, health, snapshot.Health(), now, MAX_SERIES
            )
            body = page.render().body

            assert b"otel_metric_overflow" not in body, f"round {r}: a live series was folded into overflow"
            assert current[0].dropped == 0
            observed = sum(len(obs) for obs in current[0].points.values())
            assert sdk_storage.stored_series(provider) == observed, f"round {r}: the SDK holds gone series"
            assert len(ledger.totals) == len(ledger.seen) <= MAX_SERIES

            got = requests_by_script(body)
            exported.append(got)
            assert all(got[s] == 5 for s in active if s not in returning)
            if r >= 1:  # idle for one round (< TTL): still exported, value unchanged
                previous = [f"wfp-{r - 1:02d}-{i:04d}" for i in range(PER_ROUND)]
                assert all(got[s] == exported[r - 1][s] for s in previous if s not in returning)
                # but no rows in the quantile window: its quantile gauges are gone
                gauges = [line for line in body.decode().splitlines() if line.startswith(INVOCATION)]
                assert gauges and not any(f'"{previous[-1]}"' in line for line in gauges)
            if r >= 2:  # idle for two rounds (>= TTL): gone from the export and from the ledger
                assert not any(f"wfp-{r - 2:02d}-{i:04d}" in got for i in range(BACK, PER_ROUND))
            if returning:  # counted again from zero: the new minutes only, never the old ones twice
                assert all(got[s] == 5 for s in returning)
        assert ledger.forgotten == 8 * PER_ROUND + BACK  # the returning ones went idle twice
    finally:
        provider.shutdown()


async def test_the_bridge_forgets_idle_series_and_never_counts_a_minute_twice(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge], make_config: Callable[..., Config]
) -> None:
    ttl = timedelta(minutes=5)  # the least allowed (settle): the world's idle scripts go quiet for longer
    bridge = make_bridge(make_config(idle_series_ttl=ttl, state_dir=None))
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    for _ in range(40):
        await bridge.poll_once()
        clock.advance(60)
    await bridge.poll_once()
    now = clock.now()
    assert all(s.ledgers[WORKERS].idle_ttl == ttl for s in bridge.accounts.values())
    assert sum(s.ledgers[WORKERS].forgotten for s in bridge.accounts.values()) > 0
    forgotten = sum(ledger.forgotten for s in bridge.accounts.values() for ledger in s.ledgers.values())
    page = bridge.page.page.body.decode()
    assert sum(parse_prometheus(page, prefix="otelbridge_series_forgotten").values()) == forgotten

    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    want = expected_counters(sim.traffic, bridge.catalogue, list(bridge.accounts), start, end, as_of=now)
    got = {k: v for k, v in parse_prometheus(page).items() if k[0] == REQUESTS}
    kept = [k for k in want if k[0] == REQUESTS and k in got]
    assert all(got[k] <= want[k] for k in kept)  # a counter that started again holds less, never more
    busy = {s.name for a in sim.traffic.accounts for s in a.scripts if s.profile == "busy"}
    exact = [
        k
        for k in kept
        if dict(k[1])["faas_name"] in busy and dict(k[1])["cloudflare_workers_status"] == "success"
    ]
    assert exact and all(got[k] == want[k] for k in exact)  # never idle: every minute counted once
