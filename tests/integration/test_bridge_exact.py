"""The bridge against the simulated API over real HTTP: exported numbers equal Cloudflare's exactly."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp
import pytest

from otelbridge import server
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, expected_quantiles, otlp_values, parse_prometheus
from tests.otlp_receiver import OtlpReceiver


async def scrape(bridge: Bridge, gzip: bool = False) -> str:
    runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
    try:
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r,
        ):
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            if gzip:
                assert r.headers.get("Content-Encoding") == "gzip"
            return await r.text()
    finally:
        await runner.cleanup()


@pytest.fixture
async def otlp(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OtlpReceiver]:
    for name in [n for n in os.environ if n.startswith("OTEL_EXPORTER_OTLP")]:
        monkeypatch.delenv(name)
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_simulated_hour_with_ingestion_delay_is_exact(
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    otlp: OtlpReceiver,
) -> None:
    sim.knobs.ingestion_delay = 240  # values keep growing for 4 minutes after each minute ends
    bridge = make_bridge(make_config(otlp_endpoint=otlp.endpoint))  # OTLP set up as in production
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    for _ in range(60):
        await bridge.poll_once()
        clock.advance(60)
    await bridge.otlp_idle()
    otlp.requests.clear()  # keep only the export of the last poll's collection
    await bridge.poll_once()
    now = clock.now()

    accounts = list(bridge.accounts)
    assert len(accounts) == 3
    counted = {a: s.ledgers[WORKERS].counted for a, s in bridge.accounts.items()}
    assert set(counted.values()) == {floor_minute(now - bridge.config.delay)}
    end = counted[accounts[0]]
    want = expected_counters(sim.traffic, bridge.catalogue, accounts, start, end, as_of=now)
    assert len(want) > 100

    got = parse_prometheus(await scrape(bridge))
    got_counters = {k: v for k, v in got.items() if k[0].endswith("_total")}
    assert got_counters == want
    assert parse_prometheus(await scrape(bridge, gzip=True)) == got

    # OTLP carried the very same values: the requests the production exporter sent over HTTP.
    await bridge.otlp_idle()
    assert bridge.outcomes_otlp["success"] >= 1 and not bridge.outcomes_otlp["failure"]
    assert otlp_values(otlp.requests, bridge.catalogue) == got


async def test_quantiles_are_the_apis_values_for_the_group_in_seconds(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    await bridge.start()
    clock.advance(600)
    await bridge.poll_once()
    now = clock.now()
    q_end = floor_minute(now - bridge.config.settle)
    q_start = q_end - bridge.config.quantile_window
    got = parse_prometheus(await scrape(bridge), prefix="cloudflare_workers_invocation_")
    want = {}
    for account in bridge.accounts:
        scripts = {s for (s, _) in sim.traffic.series_totals(account, q_start, q_end, as_of=now)}
        want.update(
            expected_quantiles(
                sim.traffic, bridge.catalogue, bridge.quantiles, account, scripts, q_start, q_end, now
            )
        )
    assert len(want) > 50
    assert got == want
    cpu = [v for (name, labels), v in got.items() if name == "cloudflare_workers_invocation_cpu_time_seconds"]
    assert max(cpu) < 10, "CPU quantiles are seconds, not microseconds"


async def test_one_graphql_request_per_account_per_cycle(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    await bridge.start()
    await bridge.poll_once()  # first cycle also reads each account's dataset settings
    for _ in range(5):
        clock.advance(60)
        sim.reset_log()
        await bridge.poll_once()
        graphql = [e for e in sim.query_log if e.endpoint == "graphql"]
        assert sorted(e.account_tags for e in graphql) == sorted((a,) for a in bridge.accounts)
        assert all(e.outcome == "ok" for e in graphql)


async def test_poll_interval_and_delay_combinations_never_gap_or_double(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge], make_config: Callable[..., object]
) -> None:
    combos = [(60, 0, 0, 0), (37, 1, 3, 120), (150, 3, 10, 300), (90, 2, 2, 0), (45, 0, 6, 330)]
    for poll, delay, settle, ingestion in combos:
        sim.knobs.ingestion_delay = ingestion
        config = make_config(
            poll_interval=timedelta(seconds=poll),
            delay=timedelta(minutes=delay),
            settle=timedelta(minutes=max(settle, delay)),
            state_dir=None,
        )
        bridge = make_bridge(config)
        await bridge.start()
        start = floor_minute(clock.now() - config.lookback)  # type: ignore[attr-defined]
        for _ in range(25):
            await bridge.poll_once()
            clock.advance(poll)
        now = clock.now()
        accounts = list(bridge.accounts)
        end = bridge.accounts[accounts[0]].ledgers[WORKERS].counted
        want = expected_counters(
            sim.traffic, bridge.catalogue, accounts, start, end, as_of=bridge_last_poll(now, poll)
        )
        got = {
            k: v
            for k, v in parse_prometheus(bridge.page.page.body.decode()).items()
            if k[0].endswith("_total")
        }
        assert got == want, (poll, delay, settle, ingestion)


def bridge_last_poll(now: object, poll: int) -> object:
    return now - timedelta(seconds=poll)  # type: ignore[operator]
