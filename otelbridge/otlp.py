"""The OTLP metric exporter, configured by the standard OTEL_EXPORTER_OTLP_* variables.

An export runs in two steps: `encode` turns the collection into protobuf requests (millions of
short-lived objects at 10^5 series, so the bridge holds the cyclic GC off for it, see gcpause),
and `send` puts them on the wire with the exporter's own retries, which may wait up to the OTLP
timeout while a Collector is down; the GC hold must not cover that. The SDK's exporters do both
in one `export` call, so otlp_http and otlp_grpc split them, each on private parts of its exporter
that tests/unit/test_exporter_contracts.py pins.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
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
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)

from otelbridge.config import Config, ConfigError

log = logging.getLogger("otelbridge.otlp")

SUPPORTED_PROTOCOLS = ("http/protobuf", "grpc")


class OtlpExporter(Protocol):
    def encode(self, data: MetricsData) -> Iterator[ExportMetricsServiceRequest]:
        """Protobuf requests of at most MAX_BATCH data points each, encoded one by one as they are
        taken (so one batch's protobuf is held at a time, not the whole export's); CPU only, no I/O."""

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


def _protocol_setting() -> tuple[str, str]:
    """(variable, value) of the protocol in force: the metrics-specific variable wins."""
    for variable in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(variable, "").strip()
        if value:
            return variable, value
    return "", "http/protobuf"


def protocol() -> str:
    return _protocol_setting()[1]


def check_protocol(config: Config) -> None:
    """Refuse a protocol the exporter would silently treat as another (http/json sent as protobuf)."""
    variable, value = _protocol_setting()
    if otlp_enabled(config) and value not in SUPPORTED_PROTOCOLS:
        raise ConfigError(
            f"{variable}: OTLP protocol {value!r} is not supported; use {' or '.join(SUPPORTED_PROTOCOLS)}"
        )


def target(config: Config) -> str | None:
    """Where OTLP metrics go, as the exporter will be told (None: OTLP is off)."""
    if not otlp_enabled(config):
        return None
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    if explicit:
        return explicit
    assert config.otlp_endpoint is not None
    if protocol() == "grpc":
        return config.otlp_endpoint
    return config.otlp_endpoint.rstrip("/") + "/v1/metrics"


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
    endpoint = target(config)
    if endpoint is None:
        return None
    check_protocol(config)
    _quiet_exporter_logs()
    if protocol() == "grpc":
        from otelbridge.otlp_grpc import GrpcExporter

        return GrpcExporter(
            endpoint=endpoint,
            insecure=endpoint.startswith("http://") or None,
            preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
            max_export_batch_size=MAX_BATCH,
        )
    from otelbridge.otlp_http import HttpExporter

    return HttpExporter(
        endpoint=endpoint,
        preferred_temporality=CUMULATIVE,  # type: ignore[arg-type]
        max_export_batch_size=MAX_BATCH,
    )


class _LastFailure(logging.Handler):
    """Keeps the exporter's first complaint instead of printing it: while the Collector is down
    the SDK says the same three things every poll. ExportOutcomes logs it once per outage."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        if not self.message:  # the first complaint names the cause; later ones say "gave up"
            self.message = record.getMessage()[:500]

    def take(self) -> str:
        """The first complaint since the last take (exports never overlap, so: of the last export)."""
        message, self.message = self.message, ""
        return message


_LAST_FAILURE = _LastFailure()
EXPORTER_LOGGER = "opentelemetry.exporter.otlp"


def _quiet_exporter_logs() -> None:
    logger = logging.getLogger(EXPORTER_LOGGER)
    if _LAST_FAILURE not in logger.handlers:
        logger.addHandler(_LAST_FAILURE)
    logger.propagate = False


class ExportOutcomes:
    """One log line when exports start failing and one when they recover, whatever the poll rate."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.failures = 0  # failed exports in the current outage; 0 when healthy

    def record(self, ok: bool) -> None:
        reason = _LAST_FAILURE.take() or "no detail from the exporter"
        if ok and self.failures:
            log.info("OTLP exports to %s recovered after %d failed export(s)", self.endpoint, self.failures)
            self.failures = 0
        elif not ok:
            if not self.failures:
                log.warning(
                    "OTLP exports to %s are failing (%s); retrying every poll, counted in "
                    "otelbridge.otlp.exports{result=failure}",
                    self.endpoint,
                    reason,
                )
            self.failures += 1


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
