"""Metric names: `promtool check metrics` passes on a real /metrics page (but for the documented
`quantile` label on gauges), and every name on /metrics arrives unchanged in Prometheus through
OTLP -> Collector -> remote write."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import CollectorProcess, PrometheusServer
from test_bridge_pipeline import otlp_bridge, remote_write_collector, run_hour, served

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Simulator
from tests.datasets import workers

pytestmark = pytest.mark.e2e
__all__ = ["remote_write_collector", "served"]  # fixtures used here

# The one finding accepted on /metrics, documented in docs/metrics.md ("Names").
QUANTILE_LABEL = re.compile(r'^(\S+) non-summary metrics should not have "quantile" label$')


async def page_of(port: int) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


def names_on(page: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(page) for s in family.samples}


def bridge_exporting_nowhere(
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
    **config: Any,
) -> Bridge:
    """A bridge with OTLP to a closed port: exports fail fast, and the export counter is on /metrics."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    return make_bridge(make_config(otlp_endpoint="http://127.0.0.1:9", **config))


def catalogue_names(bridge: Bridge) -> set[str]:
    """Every metric of every dataset polled (profile full; zones on), and the self-metrics."""
    names = set()
    for c in (*bridge.datasets, *bridge.zone_datasets):
        names |= {prometheus_name(m.name, m.unit, True) for m in c.counters}
        gauges = (*c.quantile_gauges, *c.average_gauges, *c.level_gauges)
        names |= {prometheus_name(m.name, m.unit, False) for m in gauges}
    names |= {prometheus_name(m.name, m.unit, m.kind == "counter") for m in bridge.catalogue.self_metrics}
    return names


async def test_promtool_finds_only_the_quantile_label_on_gauges(
    promtool_binary: str,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    served: Callable[[Bridge], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = bridge_exporting_nowhere(make_config, make_bridge, monkeypatch, datasets=())  # zones too
    await run_hour(bridge, clock, minutes=3)
    await bridge.otlp_idle()  # the failing export in the background, counted on the next page
    await bridge.poll_once()
    page = await page_of(await served(bridge))
    # Every catalogue metric is on the page, so promtool judges all of them.
    assert catalogue_names(bridge) <= names_on(page)

    checked = subprocess.run(
        [promtool_binary, "check", "metrics"], input=page, capture_output=True, text=True, timeout=60
    )
    findings = [line for line in (checked.stdout + checked.stderr).splitlines() if line.strip()]
    gauges = workers(bridge.catalogue).quantile_gauges
    quantile_gauges = {prometheus_name(g.name, g.unit, False) for g in gauges}
    unexpected = []
    for line in findings:
        accepted = QUANTILE_LABEL.match(line)
        if accepted is None or accepted.group(1) not in quantile_gauges:
            unexpected.append(line)
    assert unexpected == [], "\n".join(unexpected)
    assert findings, "promtool always reports the quantile label: no output means it did not run"


async def test_every_name_on_metrics_arrives_through_the_collector(
    prometheus: PrometheusServer,
    remote_write_collector: CollectorProcess,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    served: Callable[[Bridge], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = "otlp-names"
    with_zones = functools.partial(make_config, datasets=())
    bridge = otlp_bridge(with_zones, make_bridge, remote_write_collector, "grpc", monkeypatch, instance)
    await run_hour(bridge, clock, minutes=3)
    await bridge.otlp_idle()  # one export done, so the export counter is on the next page
    await bridge.poll_once()
    scraped = names_on(await page_of(await served(bridge)))
    assert catalogue_names(bridge) <= scraped

    deadline = time.monotonic() + 30
    arrived: set[str] = set()
    while time.monotonic() < deadline and not scraped <= arrived:
        await asyncio.sleep(0.5)
        result = await asyncio.to_thread(prometheus.query, f'group by (__name__) ({{instance="{instance}"}})')
        arrived = {r["metric"]["__name__"] for r in result}
    assert scraped - arrived == set(), f"on /metrics but not through the Collector: {scraped - arrived}"
    assert arrived - scraped == set(), f"through the Collector but not on /metrics: {arrived - scraped}"
