"""OTLP over HTTP/protobuf in two steps (see otlp.py): encode, then send.

Private parts of opentelemetry-exporter-otlp-proto-http 1.45 in use, pinned by
tests/unit/test_exporter_contracts.py: `OTLPMetricExporter._export_batch` (serializes one request
and sends it with retries), `_max_export_batch_size` and `_shutdown`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

from otelbridge.otlp import MAX_BATCH, split


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
