"""The Prometheus /metrics page, rendered through the OTel SDK once per poll and served from memory.

The data changes once per poll cycle, so the expensive part (SDK collection and text rendering,
seconds at 10^5 series) runs then, on a worker thread, and a scrape only copies bytes. The page
is exactly what PrometheusMetricReader renders; nothing is re-implemented.

The same collection also feeds OTLP: the reader keeps the MetricsData it rendered, and the OTLP
exporter sends exactly that. One reader instead of two halves the SDK's per-series state (memory)
and the collection work, and both outputs carry the same values by construction.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from otelbridge import gcpause

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Page:
    body: bytes
    gzipped: bytes
    rendered_at: float  # time.time() of the render
    render_seconds: float


class _KeepingReader(PrometheusMetricReader):
    """A PrometheusMetricReader that can also keep the last MetricsData it was handed."""

    keep = False
    last: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if self.keep:
            self.last = metrics_data
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)


class MetricsPage:
    def __init__(self, cardinality_limits: dict[type, int], keep_data: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # One instrumentation scope: otel_scope_* labels on every series would only add bytes.
        self.reader = _KeepingReader(
            registry=self.registry, cardinality_limits=cardinality_limits, scope_info_enabled=False
        )
        self.reader.keep = keep_data
        self._lock = threading.Lock()  # one render at a time: the reader's buffer is not re-entrant
        self._page = Page(b"", gzip.compress(b""), 0.0, 0.0)

    @property
    def page(self) -> Page:
        return self._page

    def take_data(self) -> MetricsData | None:
        """What the last render collected (kept only with keep_data), handed over once."""
        with self._lock:
            data, self.reader.last = self.reader.last, None
        return data

    def render(self) -> Page:
        """Collect through the SDK and keep the text; call from a worker thread."""
        with self._lock, gcpause.paused():
            started = time.perf_counter()
            body = generate_latest(self.registry)
            # Level 1: scrapes of 10^5 series compress ~10x at a fraction of level 9's cost.
            page = Page(
                body, gzip.compress(body, compresslevel=1), time.time(), time.perf_counter() - started
            )
            self._page = page
            return page
