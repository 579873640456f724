"""The harness end to end: OTel Python SDK -> OTLP -> Collector -> remote write -> Prometheus.

Runs the shipped collector-config/otlp-to-remote-write.yaml unchanged (only its environment
differs) and pins how names and labels come out of the Collector's Prometheus translation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from servers import COLLECTOR_CONFIG_DIR, CollectorProcess, PrometheusServer, value_is

pytestmark = pytest.mark.e2e

CONFIG = COLLECTOR_CONFIG_DIR / "otlp-to-remote-write.yaml"
SERVICE = "otelbridge-e2e"
EXPORT_INTERVAL_MS = 300
# Short, so that exports to a stopped Collector give up quickly instead of stalling shutdown.
EXPORT_TIMEOUT_S = 2

# What the Collector's translation makes of OTel names (measured, v0.159.0).
COUNTER = ("cloudflare.workers.requests", "{request}", "cloudflare_workers_requests_total")
GAUGE = ("cloudflare.workers.cpu_time.p99", "s", "cloudflare_workers_cpu_time_p99_seconds")
# Unit "1" on a gauge gains `_ratio` here; otelbridge's own Prometheus exporter adds nothing.
RATIO = ("otelbridge.e2e.fraction", "1", "otelbridge_e2e_fraction_ratio")
POINT_ATTRIBUTES = {"faas.name": "edge-api", "status": "success"}
POINT_LABELS = {"faas_name": "edge-api", "status": "success"}


def new_exporter(protocol: str, collector: CollectorProcess) -> MetricExporter:
    if protocol == "grpc":
        return GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
    return HttpExporter(endpoint=f"{collector.http_endpoint}/v1/metrics", timeout=EXPORT_TIMEOUT_S)


@contextmanager
def meter_provider(exporter: MetricExporter, instance: str) -> Iterator[MeterProvider]:
    # Resource() rather than Resource.create(): OTEL_* variables of the shell must not leak in.
    resource = Resource(
        {"service.name": SERVICE, "service.instance.id": instance, "cloud.provider": "cloudflare"}
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=EXPORT_INTERVAL_MS)
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    try:
        yield provider
    finally:
        provider.shutdown(timeout_millis=5_000)


@pytest.fixture
def collector(collector_binary: Path, prometheus: PrometheusServer) -> Iterator[CollectorProcess]:
    env = {"PRW_ENDPOINT": prometheus.remote_write_url}
    with CollectorProcess(collector_binary, CONFIG.read_text(), env=env) as process:
        yield process


@pytest.fixture
def instance() -> str:
    # Each test writes its own series into the module's shared Prometheus.
    return f"e2e-{uuid.uuid4().hex[:12]}"


def selector(name: str, instance: str) -> str:
    return f'{name}{{instance="{instance}"}}'


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_counter_and_gauge_arrive_with_job_and_instance(
    protocol: str, collector: CollectorProcess, prometheus: PrometheusServer, instance: str
) -> None:
    with meter_provider(new_exporter(protocol, collector), instance) as provider:
        meter = provider.get_meter("otelbridge.e2e")
        meter.create_counter(COUNTER[0], unit=COUNTER[1]).add(42, POINT_ATTRIBUTES)
        meter.create_gauge(GAUGE[0], unit=GAUGE[1]).set(0.0125, POINT_ATTRIBUTES)
        meter.create_gauge(RATIO[0], unit=RATIO[1]).set(0.25, POINT_ATTRIBUTES)

        counter = prometheus.wait_for(selector(COUNTER[2], instance), value_is(42))
        gauge = prometheus.wait_for(selector(GAUGE[2], instance), value_is(0.0125))
        ratio = prometheus.wait_for(selector(RATIO[2], instance), value_is(0.25))

    expected_labels = {
        "job": SERVICE,
        "instance": instance,
        **POINT_LABELS,
        "otel_scope_name": "otelbridge.e2e",
    }
    assert counter[0]["metric"] == {"__name__": COUNTER[2], **expected_labels}
    assert gauge[0]["metric"] == {"__name__": GAUGE[2], **expected_labels}
    assert ratio[0]["metric"] == {"__name__": RATIO[2], **expected_labels}
    # The rest of the resource goes to target_info, joined on job and instance.
    target_info = prometheus.wait_for(selector("target_info", instance))
    assert target_info[0]["metric"]["cloud_provider"] == "cloudflare"


def test_total_heals_after_collector_restart(
    collector: CollectorProcess, prometheus: PrometheusServer, instance: str
) -> None:
    name = selector(COUNTER[2], instance)
    with meter_provider(new_exporter("grpc", collector), instance) as provider:
        counter = provider.get_meter("otelbridge.e2e").create_counter(COUNTER[0], unit=COUNTER[1])
        counter.add(10, POINT_ATTRIBUTES)
        prometheus.wait_for(name, value_is(10))

        collector.stop()
        counter.add(5, POINT_ATTRIBUTES)
        # Let a few exports fail against the stopped Collector: those batches are lost for good.
        time.sleep(3 * EXPORT_INTERVAL_MS / 1000)
        collector.start()

        # The next export carries the cumulative total, which covers what the lost ones held.
        prometheus.wait_for(name, value_is(15))
