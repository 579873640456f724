"""Backfilled samples over OTLP, each point with its own timestamp, through the configured exporter.

For backends that take historic or out-of-order samples (Mimir, VictoriaMetrics, Grafana Cloud,
Prometheus with out-of-order ingestion). Points go time first, in requests of at most
otlp.MAX_BATCH points, with the resource of the live bridge (its saved service.instance.id), so
the Collector gives them the same job and instance as the live series they continue. Counters are
cumulative monotonic sums starting at the backfill's start.
"""

from __future__ import annotations

import logging
import time

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otelbridge import __version__, otlp, telemetry
from otelbridge.config import Config
from otelbridge.samples import SeriesId, Span
from otelbridge.state import StateStore

log = logging.getLogger(__name__)
NANOS = 1_000_000_000
ATTEMPTS = 5


class OtlpExportFailed(RuntimeError):
    pass


class OtlpSink:
    def __init__(self, exporter: otlp.OtlpExporter, config: Config, attempts: int = ATTEMPTS) -> None:
        self.exporter = exporter
        instance = StateStore(config.state_dir, config.api_url).instance_id() if config.state_dir else None
        self.resource = telemetry.resource(instance)
        self.scope = InstrumentationScope(telemetry.SCOPE, __version__)
        self.attempts = attempts
        self.points = 0

    def write(self, span: Span) -> None:
        batch: list[tuple[int, list[tuple[SeriesId, float]]]] = []
        size = 0
        for when, samples in span.by_time():
            batch.append((when, samples))
            size += len(samples)
            if size >= otlp.MAX_BATCH:
                self._send(span, batch)
                batch, size = [], 0
        if batch:
            self._send(span, batch)

    def _data(self, span: Span, batch: list[tuple[int, list[tuple[SeriesId, float]]]]) -> MetricsData:
        start = int((span.origin or span.start).timestamp()) * NANOS  # counters count from there
        by_name: dict[str, list[NumberDataPoint]] = {}
        for when, samples in batch:
            for (name, attributes), value in samples:
                by_name.setdefault(name, []).append(
                    NumberDataPoint(
                        attributes=dict(attributes),
                        start_time_unix_nano=start,
                        time_unix_nano=when * NANOS,
                        value=value,
                        exemplars=[],
                    )
                )
        metrics = []
        for name, points in sorted(by_name.items()):
            instrument = span.instruments[name]
            data: Sum | Gauge = (
                Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
                if instrument.kind == "counter"
                else Gauge(points)
            )
            metrics.append(Metric(name, instrument.description, instrument.unit, data))
        scope = ScopeMetrics(self.scope, metrics, "")
        return MetricsData([ResourceMetrics(self.resource, [scope], "")])

    def _send(self, span: Span, batch: list[tuple[int, list[tuple[SeriesId, float]]]]) -> None:
        requests = list(self.exporter.encode(self._data(span, batch)))  # sent again on a retry
        for attempt in range(1, self.attempts + 1):
            if self.exporter.send(requests) is MetricExportResult.SUCCESS:
                self.points += sum(len(samples) for _, samples in batch)
                return
            if attempt < self.attempts:
                log.warning("OTLP export of backfilled points failed; retry %d in %ds", attempt, 2**attempt)
                time.sleep(2**attempt)
        raise OtlpExportFailed(
            f"OTLP export failed {self.attempts} times; the span from {span.start.isoformat()} is sent "
            "again when the backfill is run again"
        )

    def close(self) -> None:
        self.exporter.shutdown()
