"""The Prometheus /metrics page, rendered through the OTel SDK once per poll and served from memory.

The data changes once per poll cycle, so the expensive part (SDK collection and text rendering,
seconds at 10^5 series) runs then, on a worker thread, and a scrape only copies bytes. The page
is exactly what PrometheusMetricReader renders; nothing is re-implemented.

The exporter translates a whole collection into Prometheus families before it renders any of them:
at 10^5 series, ~100 MB of label dicts and samples alive at once, which set the process's peak
memory. So the render hands the stock collector one metric at a time and renders each as it goes
(the page is byte for byte the stock render: a test compares them); only one metric's families
are alive at a time. This uses the exporter's _CustomCollector (`_collector`, `_callback`,
`_disable_target_info`), pinned by tests/unit/test_exporter_contracts.py.

The same collection also feeds OTLP: the reader keeps the MetricsData it rendered, and the OTLP
exporter sends exactly that. One reader instead of two halves the SDK's per-series state (memory)
and the collection work, and both outputs carry the same values by construction.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from otelbridge import gcpause

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The SDK gives up on a collection whose callbacks take longer (10 s by default): 10^5 series on a
# busy machine come close to that.
COLLECT_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Page:
    body: bytes
    gzipped: bytes
    rendered_at: float  # time.time() of the render
    render_seconds: float


class _KeepingReader(PrometheusMetricReader):
    """A PrometheusMetricReader whose collections the page renders itself, metric by metric, and
    that can keep the last one for OTLP."""

    keep = False
    last: MetricsData | None = None  # for OTLP
    collected: MetricsData | None = None  # for the render

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self.collected = metrics_data
        if self.keep:
            self.last = metrics_data

    def text(self, data: MetricsData) -> Iterator[bytes]:
        """The stock collector's text of `data`, one metric at a time (target_info first, once)."""
        collector = self._collector
        callback, no_target_info = collector._callback, collector._disable_target_info
        collector._callback = None  # the data is collected already
        try:
            for i, piece in enumerate(_by_metric(data)):
                collector._disable_target_info = no_target_info or i > 0
                collector.add_metrics_data(piece)
                yield generate_latest(collector)
        finally:
            collector._callback, collector._disable_target_info = callback, no_target_info


def _by_metric(data: MetricsData) -> Iterator[MetricsData]:
    """`data` as one MetricsData per metric (with its resource and scope); all of it when empty."""
    pieces = 0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                scope = ScopeMetrics(scope=sm.scope, metrics=[metric], schema_url=sm.schema_url)
                yield MetricsData([ResourceMetrics(rm.resource, [scope], rm.schema_url)])
                pieces += 1
    if not pieces:
        yield data


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
            self.reader.collect(timeout_millis=COLLECT_TIMEOUT_MS)
            data, self.reader.collected = self.reader.collected, None
            body = b"".join(self.reader.text(data)) if data is not None else b""
            del data
            # Level 1: scrapes of 10^5 series compress ~10x at a fraction of level 9's cost.
            page = Page(
                body, gzip.compress(body, compresslevel=1), time.time(), time.perf_counter() - started
            )
            self._page = page
            return page
