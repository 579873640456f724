"""OpenMetrics rendering of backfilled samples: names as the live page has them, escaping, exact numbers."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otelbridge.openmetrics import render
from otelbridge.samples import Instrument, Span

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_samples_render_with_the_live_names_escaped_labels_and_exact_values() -> None:
    cpu, quantiles = "cloudflare.workers.cpu_time", "cloudflare.workers.invocation.cpu_time"
    instruments = {
        cpu: Instrument(cpu, "s", 'CPU "time"\\', "counter"),
        quantiles: Instrument(quantiles, "s", "quantiles", "gauge"),
    }
    span = Span(START, START, True, instruments)
    odd = 'a "quoted"\\back\nslash'
    tricky = [0.1 + 0.2, 1e-300, 2.0**60, 123456789.000001]
    for i, value in enumerate(tricky):
        span.add("cloudflare.workers.cpu_time", (("faas.name", odd),), 1_700_000_000 + 60 * i, value)
    span.add(
        "cloudflare.workers.invocation.cpu_time", (("faas.name", "x"), ("quantile", "0.99")), 1_700_000_000, 3
    )
    out = io.StringIO()
    render(span, {"job": "otelbridge", "instance": "host:9464"}, out)
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counter = families["cloudflare_workers_cpu_time_seconds"]
    assert counter.type == "counter"
    samples = counter.samples
    assert [s.name for s in samples] == ["cloudflare_workers_cpu_time_seconds_total"] * len(tricky)
    assert [s.value for s in samples] == tricky
    assert [s.timestamp.sec for s in samples] == [1_700_000_000 + 60 * i for i in range(len(tricky))]
    assert samples[0].labels == {"faas_name": odd, "job": "otelbridge", "instance": "host:9464"}
    gauge = families["cloudflare_workers_invocation_cpu_time_seconds"]
    assert gauge.type == "gauge" and gauge.samples[0].labels["quantile"] == "0.99"
