"""The OTLP metric exporter, configured by the standard OTEL_EXPORTER_OTLP_* variables."""

from __future__ import annotations

import os

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter

from otelbridge.config import Config


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


def otlp_exporter(config: Config) -> MetricExporter | None:
    """None when no OTLP endpoint is configured. Headers, TLS, compression and timeout come from
    the exporter's own reading of OTEL_EXPORTER_OTLP_*; only the endpoint may come from the file."""
    if not otlp_enabled(config):
        return None
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or config.otlp_endpoint
    assert explicit is not None
    if protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(
            endpoint=explicit,
            insecure=explicit.startswith("http://") or None,
            preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
            max_export_batch_size=MAX_BATCH,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    if not os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        explicit = explicit.rstrip("/") + "/v1/metrics"
    return Http(
        endpoint=explicit,
        preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
        max_export_batch_size=MAX_BATCH,
    )
