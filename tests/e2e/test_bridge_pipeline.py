"""otelbridge end to end with real servers: simulated Cloudflare -> otelbridge -> Prometheus, directly
(scrape) and through a real Collector (OTLP -> remote write). Every value is checked exactly with PromQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from servers import COLLECTOR_CONFIG_DIR, CollectorProcess, PrometheusServer

from otelbridge import server
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import SeriesValues, expected_counters, expected_quantiles

pytestmark = pytest.mark.e2e

LABELS = ("cloud_account_id", "faas_name", "cloudflare_workers_status", "quantile")


def as_series(result: list[dict[str, Any]]) -> SeriesValues:
    out: SeriesValues = {}
    for item in result:
        metric = item["metric"]
        labels = tuple(sorted((k, v) for k, v in metric.items() if k in LABELS))
        out[(metric["__name__"], labels)] = float(item["value"][1])
    return out


async def until_equal(prom: PrometheusServer, promql: str, want: SeriesValues, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    got: SeriesValues = {}
    while time.monotonic() < deadline:
        got = as_series(await asyncio.to_thread(prom.query, promql))
        if got == want:
            return
        await asyncio.sleep(0.5)
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    raise AssertionError(
        f"{promql}: {len(missing)} of {len(want)} series differ, e.g. {list(missing.items())[:3]}"
    )


async def run_hour(bridge: Bridge, clock: ManualClock, minutes: int = 30) -> None:
    await bridge.start()
    for _ in range(minutes):
        await bridge.poll_once()
        clock.advance(60)
    await bridge.poll_once()


def truth(sim: Simulator, bridge: Bridge, start: Any, now: Any) -> SeriesValues:
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    return expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=now)


@pytest.fixture
async def served() -> AsyncIterator[Callable[[Bridge], Any]]:
    runners: list[Any] = []

    async def serve(bridge: Bridge) -> int:
        runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
        runners.append(runner)
        return port

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_prometheus_scrapes_exact_totals_and_quantiles(
    prometheus_binary: str,
    sim: Simulator,
    clock: ManualClock,
    make_bridge: Callable[..., Bridge],
    served: Callable[[Bridge], Any],
) -> None:
    sim.knobs.ingestion_delay = 240
    bridge = make_bridge()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await run_hour(bridge, clock)
    now = clock.now()
    port = await served(bridge)
    prom = PrometheusServer(prometheus_binary, scrape_targets=[f"127.0.0.1:{port}"])
    prom.start()  # from the main thread: its death signal is tied to the thread that started it
    try:
        want = truth(sim, bridge, start, now)
        requests = {k: v for k, v in want.items() if k[0] == "cloudflare_workers_requests_total"}
        assert len(requests) > 20
        await until_equal(prom, "cloudflare_workers_requests_total", requests)
        await until_equal(prom, '{__name__=~"cloudflare_workers_.*_total"}', want)

        q_end = floor_minute(now - bridge.config.settle)
        q_start = q_end - bridge.config.quantile_window
        quantiles: SeriesValues = {}
        for account in bridge.accounts:
            scripts = {s for (s, _) in sim.traffic.series_totals(account, q_start, q_end, as_of=now)}
            quantiles.update(
                expected_quantiles(
                    sim.traffic, bridge.catalogue, bridge.quantiles, account, scripts, q_start, q_end, now
                )
            )
        cpu = {k: v for k, v in quantiles.items() if k[0] == "cloudflare_workers_invocation_cpu_time_seconds"}
        assert cpu and max(cpu.values()) < 10
        await until_equal(prom, '{__name__=~"cloudflare_workers_invocation_.*"}', quantiles)
        up = await asyncio.to_thread(prom.query, f'up{{instance="127.0.0.1:{port}"}}')
        assert [float(u["value"][1]) for u in up] == [1.0]
    finally:
        await asyncio.to_thread(prom.stop)


def otlp_bridge(
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    collector: CollectorProcess,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
    instance: str,
) -> Bridge:
    for name in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    if not endpoint.startswith("http"):
        endpoint = f"http://{endpoint}"
    config = make_config(otlp_endpoint=endpoint)
    return make_bridge(config, instance_id=instance)


@pytest.fixture
def remote_write_collector(
    collector_binary: Path, prometheus: PrometheusServer
) -> AsyncIterator[CollectorProcess] | Any:
    config = (COLLECTOR_CONFIG_DIR / "otlp-to-remote-write.yaml").read_text()
    with CollectorProcess(collector_binary, config, env={"PRW_ENDPOINT": prometheus.remote_write_url}) as c:
        yield c


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_otlp_through_the_collector_into_prometheus_is_exact(
    protocol: str,
    prometheus: PrometheusServer,
    remote_write_collector: CollectorProcess,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = f"otlp-{protocol.replace('/', '-')}"
    bridge = otlp_bridge(make_config, make_bridge, remote_write_collector, protocol, monkeypatch, instance)
    start = floor_minute(clock.now() - bridge.config.lookback)
    await run_hour(bridge, clock, minutes=20)
    want = truth(sim, bridge, start, clock.now())
    selector = f'{{__name__=~"cloudflare_workers_.*_total", job="otelbridge", instance="{instance}"}}'
    await until_equal(prometheus, selector, want)
    # Resource attributes reach target_info, with job and instance derived as the Collector documents.
    info = await asyncio.to_thread(prometheus.query, f'target_info{{instance="{instance}"}}')
    assert info and info[0]["metric"]["job"] == "otelbridge"
    assert info[0]["metric"]["cloud_provider"] == "cloudflare"


async def test_collector_outage_never_stops_metrics_and_heals_remote_write(
    prometheus: PrometheusServer,
    remote_write_collector: CollectorProcess,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
    served: Callable[[Bridge], Any],
) -> None:
    instance = "otlp-outage"
    bridge = otlp_bridge(make_config, make_bridge, remote_write_collector, "grpc", monkeypatch, instance)
    start = floor_minute(clock.now() - bridge.config.lookback)
    await run_hour(bridge, clock, minutes=5)
    port = await served(bridge)
    selector = f'{{__name__="cloudflare_workers_requests_total", instance="{instance}"}}'

    await asyncio.to_thread(remote_write_collector.stop)
    async with aiohttp.ClientSession() as s:
        for _ in range(10):  # polls and scrapes go on while OTLP exports fail
            clock.advance(60)
            await bridge.poll_once()
            started = time.perf_counter()
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "cloudflare_workers_requests_total" in await r.text()
            assert time.perf_counter() - started < 1.0
    remote_write_collector.start()
    clock.advance(60)
    await bridge.poll_once()  # the next cycle exports again; cumulative totals heal the gap

    want = truth(sim, bridge, start, clock.now())
    want = {k: v for k, v in want.items() if k[0] == "cloudflare_workers_requests_total"}
    await until_equal(prometheus, selector, want, timeout=45)
