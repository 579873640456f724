"""Contracts with the private parts of the OpenTelemetry exporters that otelbridge builds on.

exposition.py overrides PrometheusMetricReader._receive_metrics and feeds its _CustomCollector one
metric at a time, docs.py names metrics with the
Prometheus exporter's _mapping, and otlp_http/otlp_grpc split the OTLP exporters' export into
encode and send. pyproject pins the versions these were written against; these tests fail loudly
when an upgrade moves any of it, before a silent change reaches /metrics or the Collector.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as StockGrpc
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as StockHttp
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from otelbridge import telemetry
from otelbridge.catalogue import load
from otelbridge.docs import prometheus_name
from otelbridge.exposition import MetricsPage
from otelbridge.otlp import data_points
from otelbridge.otlp_grpc import GrpcExporter
from otelbridge.otlp_http import HttpExporter
from otelbridge.snapshot import Snapshot

SERIES = 12
BATCH = 5


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_private_names_still_have_the_shapes_we_call() -> None:
    assert parameters(PrometheusMetricReader._receive_metrics) == [
        "self",
        "metrics_data",
        "timeout_millis",
        "kwargs",
    ]
    assert parameters(StockHttp._export_batch) == ["self", "export_request"]
    assert parameters(StockGrpc._export) == ["self", "data"]
    assert parameters(StockGrpc._translate_data) == ["self", "data"]
    assert parameters(StockGrpc._count_data) == ["self", "data"]
    assert parameters(StockGrpc._split_metrics_data) == ["self", "metrics_data"]
    http = StockHttp(endpoint="http://127.0.0.1:1/v1/metrics", max_export_batch_size=BATCH)
    assert http._max_export_batch_size == BATCH and http._shutdown is False


def metrics_data() -> MetricsData:
    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(i * 1.5, {"series": str(i)}) for i in range(SERIES)]

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "contract"}))
    meter = provider.get_meter("contract")
    meter.create_observable_counter("contract.counter", [observe], "s")
    meter.create_observable_gauge("contract.gauge", [observe], "1")
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        body = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics", bodies
    server.shutdown()
    server.server_close()


class _Service(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []

    def Export(self, request: ExportMetricsServiceRequest, context: Any) -> Any:
        self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, _Service]]:
    service = _Service()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", service
    server.stop(None)


def test_http_encode_then_send_puts_on_the_wire_what_export_does(
    http_receiver: tuple[str, list[bytes]],
) -> None:
    endpoint, bodies = http_receiver
    data = metrics_data()
    stock = StockHttp(endpoint=endpoint, max_export_batch_size=BATCH)
    assert stock.export(data) is MetricExportResult.SUCCESS
    by_export = list(bodies)
    bodies.clear()
    ours = HttpExporter(endpoint=endpoint, max_export_batch_size=BATCH)
    batches = list(ours.encode(data))
    assert all(isinstance(b, ExportMetricsServiceRequest) for b in batches)
    assert ours.send(batches) is MetricExportResult.SUCCESS
    assert bodies == by_export
    assert len(bodies) == -(-2 * SERIES // BATCH), "split into batches of at most BATCH points"
    assert sum(data_points(b) for b in batches) == 2 * SERIES
    ours.shutdown()
    assert ours.send(batches) is MetricExportResult.FAILURE


def test_grpc_encode_then_send_puts_on_the_wire_what_export_does(
    grpc_receiver: tuple[str, _Service],
) -> None:
    endpoint, service = grpc_receiver
    data = metrics_data()
    stock = StockGrpc(endpoint=endpoint, insecure=True, max_export_batch_size=BATCH)
    assert stock.export(data) is MetricExportResult.SUCCESS
    by_export = list(service.requests)
    service.requests.clear()
    ours = GrpcExporter(endpoint=endpoint, insecure=True, max_export_batch_size=BATCH)
    batches = list(ours.encode(data))
    assert ours.send(batches) is MetricExportResult.SUCCESS
    assert service.requests == by_export
    assert len(service.requests) == -(-2 * SERIES // BATCH)
    stock.shutdown()
    ours.shutdown()


def test_the_page_render_keeps_the_data_it_rendered_and_names_match_the_docs() -> None:
    catalogue = load()
    points = {m.name: (Observation(1, {}),) for m in catalogue.self_metrics if not m.attributes}
    page = MetricsPage(telemetry.cardinality_limits(10), keep_data=True)
    snapshot = Snapshot(points=points)
    provider = telemetry.meter_provider([page.reader], catalogue, lambda: snapshot, telemetry.resource("c"))
    try:
        body = page.render().body.decode()
        data = page.take_data()
    finally:
        provider.shutdown()
    assert data is not None and page.take_data() is None, "handed over once"
    kept = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert kept == set(points)
    for metric in catalogue.self_metrics:
        if metric.name in points:
            exported = prometheus_name(metric.name, metric.unit, metric.kind == "counter")
            assert f"\n{exported} 1" in body, f"docs name {exported} is not what the exporter renders"


@pytest.mark.parametrize("exporter", [HttpExporter, GrpcExporter])
def test_batches_are_encoded_one_at_a_time(exporter: type[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the batch being sent is held as protobuf, never the whole collection's."""
    module = exporter.__module__
    encoded: list[int] = []
    real = sys.modules[module].encode_metrics

    def counting(data: MetricsData) -> ExportMetricsServiceRequest:
        encoded.append(1)
        return real(data)

    monkeypatch.setattr(f"{module}.encode_metrics", counting)
    batches = exporter(endpoint="http://127.0.0.1:9", max_export_batch_size=BATCH).encode(metrics_data())
    assert encoded == []
    first = next(batches)
    assert len(encoded) == 1 and data_points(first) == BATCH
    assert sum(data_points(b) for b in batches) == 2 * SERIES - BATCH
    assert len(encoded) == -(-2 * SERIES // BATCH)


def test_the_page_rendered_metric_by_metric_is_the_stock_render_byte_for_byte() -> None:
    catalogue = load()
    workers = next(d for d in catalogue.datasets if d.dataset == "workersInvocationsAdaptive")
    names = [c.name for _, c in workers.exported_counters] + [g.name for g in workers.quantile_gauges]
    points = {
        name: tuple(
            Observation(i * 1.5 + n, {"cloud.account.id": "a", "script": f"s{n}", "status": "ok"})
            for n in range(3)
        )
        for i, name in enumerate(names)
    }
    points.update({m.name: (Observation(2, {}),) for m in catalogue.self_metrics if not m.attributes})
    page = MetricsPage(telemetry.cardinality_limits(10))
    registry = CollectorRegistry(auto_describe=False)
    stock = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    snapshot = Snapshot(points=points)
    provider = telemetry.meter_provider(
        [page.reader, stock], catalogue, lambda: snapshot, telemetry.resource("c")
    )
    try:
        ours = page.render().body
        theirs = generate_latest(registry)
        page.reader.collect()
        data = page.reader.collected
        assert data is not None
        pieces = list(page.reader.text(data))
    finally:
        provider.shutdown()
    assert ours == theirs and b"target_info{" in ours and ours.count(b"# TYPE target_info") == 1
    metrics = sum(len(sm.metrics) for rm in data.resource_metrics for sm in rm.scope_metrics)
    assert len(pieces) == metrics == len(points), "one metric's families at a time"
