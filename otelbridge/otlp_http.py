"""OTLP over HTTP/protobuf in two steps (see otlp.py): encode, then send.

Private parts of opentelemetry-exporter-otlp-proto-http 1.45 in use, pinned by
tests/unit/test_exporter_contracts.py: `OTLPMetricExporter._export_batch` (serializes one request
and sends it with retries), `_max_export_batch_size` and `_shutdown`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import (
    Metric,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)

from otelbridge.otlp import MAX_BATCH

Located = tuple[ResourceMetrics, ScopeMetrics, Metric, Any]  # a data point and where it sits


def _located(data: MetricsData) -> Iterator[Located]:
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    yield resource, scope, metric, point


def _rebuilt(points: list[Located]) -> MetricsData:
    """The resources, scopes and metrics of these (consecutive) points, holding only them."""
    tree: dict[int, tuple[ResourceMetrics, dict[int, tuple[ScopeMetrics, dict[int, Any]]]]] = {}
    for resource, scope, metric, point in points:
        scopes = tree.setdefault(id(resource), (resource, {}))[1]
        metrics = scopes.setdefault(id(scope), (scope, {}))[1]
        metrics.setdefault(id(metric), (metric, []))[1].append(point)
    return MetricsData(
        resource_metrics=[
            replace(
                resource,
                scope_metrics=[
                    replace(
                        scope,
                        metrics=[_with_points(m, p) for m, p in metrics.values()],
                    )
                    for scope, metrics in scopes.values()
                ],
            )
            for resource, scopes in tree.values()
        ]
    )


def _with_points(metric: Metric, points: list[Any]) -> Metric:
    data: Any = metric.data  # Sum or Gauge: every kind has data_points
    return replace(metric, data=replace(data, data_points=points))


def split(data: MetricsData, size: int) -> Iterator[MetricsData]:
    """The collection in pieces of at most `size` data points, in order: the requests the stock
    exporter makes by splitting the encoded whole (tests/unit/test_exporter_contracts.py)."""
    located = _located(data)
    while points := list(itertools.islice(located, size)):
        yield _rebuilt(points)


class HttpExporter(OTLPMetricExporter):
    def encode(self, data: MetricsData) -> Iterator[ExportMetricsServiceRequest]:
        # Split before encoding (as the gRPC exporter does), not after as export() does: the same
        # requests, without a protobuf of the whole collection and a copy of it in batches.
        for batch in split(data, self._max_export_batch_size or MAX_BATCH):
            yield encode_metrics(batch)

    def send(self, batches: Sequence[ExportMetricsServiceRequest]) -> MetricExportResult:
        if self._shutdown:
            return MetricExportResult.FAILURE
        for batch in batches:
            if self._export_batch(batch) is not MetricExportResult.SUCCESS:
                return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS
