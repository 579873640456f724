"""The OTLP metric exporter, configured by the standard OTEL_EXPORTER_OTLP_* variables.

An export runs in two steps: `encode` turns the collection into protobuf requests (millions of
short-lived objects at 10^5 series, so the bridge holds the cyclic GC off for it, see gcpause),
and `send` puts them on the wire with the exporter's own retries, which may wait up to the OTLP
timeout while a Collector is down; the GC hold must not cover that. The SDK's exporters do both
in one `export` call, so otlp_http and otlp_grpc split them, each on private parts of its exporter
that tests/unit/test_exporter_contracts.py pins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricsData

from otelbridge.config import Config


class OtlpExporter(Protocol):
    def encode(self, data: MetricsData) -> list[ExportMetricsServiceRequest]:
        """Protobuf requests of at most MAX_BATCH data points each; CPU only, no I/O."""

    def send(self, batches: Sequence[ExportMetricsServiceRequest]) -> MetricExportResult:
        """Send in order with the exporter's retries; stops at the first batch that fails (with
        cumulative temporality the next export carries the same totals)."""

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None: ...


def data_points(request: ExportMetricsServiceRequest) -> int:
    count = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind:
                    count += len(getattr(metric, kind).data_points)
    return count


def otlp_enabled(config: Config) -> bool:
    return bool(config.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


def protocol() -> str:
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


# Always cumulative, whatever OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE says: a dropped
# cumulative batch heals with the next export, a dropped delta is lost for good.
CUMULATIVE = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


# Data points per OTLP request: ~1 MB, well under the Collector's default 4 MiB gRPC message limit
# (10^5 series make ~16 MB), and each request's encoding holds the GIL for a short while only.
MAX_BATCH = 5_000


def otlp_exporter(config: Config) -> OtlpExporter | None:
    """None when no OTLP endpoint is configured. Headers, TLS, compression and timeout come from
    the exporter's own reading of OTEL_EXPORTER_OTLP_*; only the endpoint may come from the file."""
    if not otlp_enabled(config):
        return None
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or config.otlp_endpoint
    assert explicit is not None
    if protocol() == "grpc":
        from otelbridge.otlp_grpc import GrpcExporter

        return GrpcExporter(
            endpoint=explicit,
            insecure=explicit.startswith("http://") or None,
            preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
            max_export_batch_size=MAX_BATCH,
        )
    from otelbridge.otlp_http import HttpExporter

    if not os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        explicit = explicit.rstrip("/") + "/v1/metrics"
    return HttpExporter(
        endpoint=explicit,
        preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
        max_export_batch_size=MAX_BATCH,
    )
