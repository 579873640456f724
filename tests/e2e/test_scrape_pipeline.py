"""collector-config/scrape-otelbridge.yaml end to end: the Collector scrapes an OTel Prometheus
exporter's /metrics and remote-writes what it scraped to Prometheus.

The /metrics endpoint here is the OTel SDK's PrometheusMetricReader served by prometheus_client,
the same exporter otelbridge uses; otelbridge's own server is tested with otelbridge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server
from servers import COLLECTOR_CONFIG_DIR, HOST, CollectorProcess, PrometheusServer, free_port, value_is

pytestmark = pytest.mark.e2e

CONFIG = COLLECTOR_CONFIG_DIR / "scrape-otelbridge.yaml"
JOB = "otelbridge"  # the scrape job's name in the shipped config


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[str, MeterProvider]]:
    """A /metrics endpoint on a free port and the MeterProvider whose instruments it shows."""
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)],
        resource=Resource({"service.name": "otelbridge", "cloud.provider": "cloudflare"}),
    )
    port = free_port()
    server, thread = start_http_server(port, addr=HOST, registry=registry)
    try:
        yield f"{HOST}:{port}", provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        provider.shutdown()


def test_scraped_series_arrive_with_the_scrape_job_and_target(
    collector_binary: Path,
    prometheus: PrometheusServer,
    metrics_endpoint: tuple[str, MeterProvider],
) -> None:
    target, provider = metrics_endpoint
    counter = provider.get_meter("otelbridge.e2e").create_counter(
        "cloudflare.workers.requests", unit="{request}"
    )
    counter.add(42, {"faas.name": "edge-api"})
    env = {
        "OTELBRIDGE_TARGET": target,
        "OTELBRIDGE_SCRAPE_INTERVAL": "1s",
        "OTELBRIDGE_SCRAPE_TIMEOUT": "1s",
        "PRW_ENDPOINT": prometheus.remote_write_url,
    }
    # The receiver's scrape manager applies new targets only on its 5 s reload tick: the first
    # sample arrives 5-7 s after the Collector starts.
    with CollectorProcess(collector_binary, CONFIG.read_text(), env=env, wait_ports=[]):
        query = f'cloudflare_workers_requests_total{{job="{JOB}", instance="{target}"}}'
        result = prometheus.wait_for(query, value_is(42))
        # The exporter's target_info comes back as resource attributes and goes out as target_info again.
        info = prometheus.wait_for(f'target_info{{job="{JOB}", instance="{target}"}}')

    assert result[0]["metric"] == {
        "__name__": "cloudflare_workers_requests_total",
        "job": JOB,
        "instance": target,
        "faas_name": "edge-api",
        "otel_scope_name": "otelbridge.e2e",
    }
    assert info[0]["metric"]["cloud_provider"] == "cloudflare"
