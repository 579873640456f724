"""The benchmark at toy sizes: the harness works and the structural targets hold. No timing thresholds:
timings belong in the bench output (`python -m bench.run`), not in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from bench import measure, report, world
from otelbridge import server, snapshot, telemetry
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.simulator import Simulator


async def test_harness_measures_scrapes_against_the_baseline_with_equal_values() -> None:
    result = await measure.scrapes(series=300, n=5, baseline_n=3, concurrent=3)
    assert result["series"] > 100
    assert result["values_equal"], "the raw baseline and the bridge's page must show the same series"
    for key in ("ours", "ours_identity", "baseline", "during_poll"):
        assert result[key]["n"] > 0 and result[key]["failures"] == 0
    assert result["concurrent"]["failures"] == 0
    text = report.markdown({**run_info(), "load_avg_end": [0.0]}, [("scrapes", {}, result)])
    assert f"| {result['series']:,} |" in text


def run_info() -> dict[str, object]:
    from bench.run import machine

    return machine()


async def test_one_graphql_request_per_account_per_steady_cycle() -> None:
    result = await measure.requests(accounts=[1, 3], scripts=3, cycles=2)
    for row in result["rows"]:
        assert row["per_account_min"] == row["per_account_max"] == 1
        assert row["per_cycle"] == row["accounts"]


async def test_every_otlp_poll_exports_once_in_the_background_and_memory_is_reported() -> None:
    result = await measure.load(series=200, cycles=2)
    assert result["otlp_polls"] == 2
    assert result["otlp_exports"] == result["otlp_polls"], "one export per poll with OTLP on, none off"
    assert result["otlp_mb_per_export"] > 0
    # Two polls back to back make two exports, whether the second lands during the first's export
    # (one more export follows the running one) or after it.
    assert result["exports_after_landing"] == 2
    for key in ("scrapes_during_poll_otlp_off", "scrapes_during_poll_otlp_on", "scrapes_during_export"):
        assert result[key]["n"] > 0 and result[key]["failures"] == 0
    assert result["peak_rss_mb"] > 0 and result["cpu_per_poll_otlp_on_s"] > 0
    crowd = result["concurrent_scrapes_during_poll_otlp_on"]
    assert crowd["scrapers"] == 20 and crowd["n"] >= 20 and crowd["failures"] == 0
    text = report.markdown({**run_info(), "load_avg_end": [0.0]}, [("load", {}, result)])
    assert f"| {result['series']:,} |" in text


def _fresh_sdk_render(bridge: Bridge) -> bytes:
    """What the SDK and the Prometheus exporter render for the bridge's current snapshot, from scratch."""
    registry = CollectorRegistry(auto_describe=False)
    limits = telemetry.cardinality_limits(bridge.config.max_series)
    reader = PrometheusMetricReader(registry=registry, cardinality_limits=limits, scope_info_enabled=False)
    provider = telemetry.meter_provider(
        [reader], bridge.catalogue, bridge.current, telemetry.resource("smoke")
    )
    try:
        return generate_latest(registry)
    finally:
        provider.shutdown()


async def _scrape(url: str, encoding: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        _, body = await world.scrape(session, url, gzip_ok=encoding == "gzip")
    return body


async def test_scrapes_serve_the_page_rendered_at_poll_time_identical_to_a_fresh_sdk_render(
    sim: Simulator,
    clock: ManualClock,
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = make_bridge(instance_id="smoke")
    await bridge.start()
    for _ in range(3):
        await bridge.poll_once()
        clock.advance(60)
    rendered = bridge.page.page
    assert bridge.current().series > 100
    runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        # A scrape must not collect: any call into the snapshot would fail the request.
        with monkeypatch.context() as m:
            m.setattr(snapshot.Snapshot, "observe", _no_collection)
            plain, zipped = await _scrape(url, "identity"), await _scrape(url, "gzip")
    finally:
        await runner.cleanup()
    assert bridge.page.page is rendered
    assert plain == rendered.body
    assert world.body_text(zipped).encode() == rendered.body
    # Line for line the same text; only the order may differ, as the long-lived SDK keeps a series
    # where it first saw it (a script that woke up later comes last) and a fresh one sorts them anew.
    fresh = _fresh_sdk_render(bridge)
    assert sorted(plain.splitlines()) == sorted(fresh.splitlines()), "served page differs from the SDK's"


def _no_collection(self: snapshot.Snapshot, name: str) -> tuple[()]:
    raise AssertionError("a scrape collected through the SDK")


async def test_snapshot_counts_series_and_drops_as_it_materialises_them(
    sim: Simulator, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    await bridge.start()
    await bridge.poll_once()
    full = bridge.current()
    counted = {name: len(full.observe(name)) for name in _dataset_instruments(bridge)}
    assert full.series == sum(counted.values()) and full.dropped == 0

    capped = max(counted.values()) // 2
    bridge.config = replace(bridge.config, max_series=capped)
    bridge.publish()
    small = bridge.current()
    kept = {name: len(small.observe(name)) for name in counted}
    assert all(n == min(counted[name], capped) for name, n in kept.items())
    assert small.series == sum(kept.values())
    assert small.dropped == sum(counted.values()) - small.series
    assert small.observe("otelbridge.series")[0].value == small.series


def _dataset_instruments(bridge: Bridge) -> list[str]:
    """Every dataset's instruments (Workers and the datasets polled beside it)."""
    return [
        m.name
        for c in bridge.catalogue.datasets
        for m in (*c.counters, *c.quantile_gauges, *c.average_gauges, *c.level_gauges)
    ]


async def test_zones_cost_one_request_per_ten_zones_besides_the_account_request() -> None:
    result = await measure.zones_default(zones=25, scripts=3, minutes=2)
    assert result["requests_per_cycle"] == 1 + 3  # the account's datasets, then 25 zones in groups of 10
    assert result["series"] > 25 and result["peak_rss_mb"] > 0


async def test_the_backfill_benchmark_reports_its_figures(tmp_path: Path) -> None:
    from bench import backfill

    result = await backfill.measure(days=0.05, scripts=5, step="5m", directory=tmp_path)
    assert result["requests"] > 0 and result["requests_per_day"] > 0 and result["file_bytes"] > 0
    assert result["peak_rss_mib"] > 0 and result["wall_seconds"] >= 0
