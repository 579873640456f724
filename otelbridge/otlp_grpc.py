"""OTLP over gRPC in two steps (see otlp.py): encode, then send.

The SDK's gRPC exporter encodes inside its send loop (`_export` calls `_translate_data` on every
attempt), so `_translate_data` here passes requests encoded beforehand straight through.
Private parts of opentelemetry-exporter-otlp-proto-grpc 1.45 in use, pinned by
tests/unit/test_exporter_contracts.py: `_translate_data`, `_count_data`, `_export`. Batches are split by
`otlp.split`, as for HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

from otelbridge.otlp import MAX_BATCH, data_points, split


class GrpcExporter(OTLPMetricExporter):
    def encode(self, data: MetricsData) -> Iterator[ExportMetricsServiceRequest]:
        for batch in split(data, self._max_export_batch_size or MAX_BATCH):
            yield encode_metrics(batch)

    def send(self, batches: Sequence[ExportMetricsServiceRequest]) -> MetricExportResult:
        for batch in batches:
            encoded: Any = batch  # _export is typed for MetricsData; _translate_data passes this through
            if self._export(encoded) is not MetricExportResult.SUCCESS:
                return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def _translate_data(self, data: Any) -> ExportMetricsServiceRequest:
        if isinstance(data, ExportMetricsServiceRequest):
            return data
        return encode_metrics(data)

    def _count_data(self, data: Any) -> int:
        if isinstance(data, ExportMetricsServiceRequest):
            return data_points(data)
        return int(super()._count_data(data))
