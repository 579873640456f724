"""OTLP over HTTP/protobuf in two steps (see otlp.py): encode, then send.

Private parts of opentelemetry-exporter-otlp-proto-http 1.45 in use, pinned by
tests/unit/test_exporter_contracts.py: `_split_metrics_data` (splits an encoded request by data
points), `OTLPMetricExporter._export_batch` (serializes one request and sends it with retries),
`_max_export_batch_size` and `_shutdown`.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter, _split_metrics_data
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData


class HttpExporter(OTLPMetricExporter):
    def encode(self, data: MetricsData) -> list[ExportMetricsServiceRequest]:
        return list(_split_metrics_data(encode_metrics(data), self._max_export_batch_size))

    def send(self, batches: Sequence[ExportMetricsServiceRequest]) -> MetricExportResult:
        if self._shutdown:
            return MetricExportResult.FAILURE
        for batch in batches:
            if self._export_batch(batch) is not MetricExportResult.SUCCESS:
                return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS
