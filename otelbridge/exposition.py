"""The Prometheus /metrics page, rendered through the OTel SDK once per poll and served from memory.

The data changes once per poll cycle, so the expensive part (SDK collection and text rendering,
seconds at 10^5 series) runs then, on a worker thread, and a scrape only copies bytes. The page
is exactly what PrometheusMetricReader renders; nothing is re-implemented.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Page:
    body: bytes
    gzipped: bytes
    rendered_at: float  # time.time() of the render
    render_seconds: float


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a render runs.

    A render builds millions of short-lived objects that stay alive for the whole render, so they
    get promoted and trigger full collections in the middle of it: at 10^5 series, four per render
    and up to 0.36 s each, with the GIL held, so the event loop and every scrape stopped too. What a
    render leaves behind is acyclic and freed by reference counting; the collector resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class MetricsPage:
    def __init__(self, cardinality_limits: dict[type, int]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # One instrumentation scope: otel_scope_* labels on every series would only add bytes.
        self.reader = PrometheusMetricReader(
            registry=self.registry, cardinality_limits=cardinality_limits, scope_info_enabled=False
        )
        self._lock = threading.Lock()  # one render at a time: the reader's buffer is not re-entrant
        self._page = Page(b"", gzip.compress(b""), 0.0, 0.0)

    @property
    def page(self) -> Page:
        return self._page

    def render(self) -> Page:
        """Collect through the SDK and keep the text; call from a worker thread."""
        with self._lock, _no_cyclic_gc():
            started = time.perf_counter()
            body = generate_latest(self.registry)
            # Level 1: scrapes of 10^5 series compress ~10x at a fraction of level 9's cost.
            page = Page(
                body, gzip.compress(body, compresslevel=1), time.time(), time.perf_counter() - started
            )
            self._page = page
            return page
