"""Reading what otelbridge exports, for assertions: Prometheus text and OTLP requests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client.parser import text_string_to_metric_families

from otelbridge.catalogue import Catalogue
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Traffic
from tests.datasets import workers

SeriesValues = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
WORKER_LABELS = ("cloud_account_id", "faas_name", "cloudflare_workers_status", "quantile")


def parse_prometheus(text: str, prefix: str = "cloudflare_workers_") -> SeriesValues:
    """(sample name, sorted Workers labels) -> value, for samples whose name starts with prefix."""
    out: SeriesValues = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(prefix):
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k in WORKER_LABELS))
            key = (sample.name, labels)
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def series_on(text: str, prefix: str) -> int:
    """How many series of names starting with prefix a /metrics page holds."""
    return sum(
        1 for f in text_string_to_metric_families(text) for s in f.samples if s.name.startswith(prefix)
    )


def _kinds(catalogue: Catalogue) -> dict[str, tuple[str, bool]]:
    """Workers metric name -> (unit, is a counter)."""
    dataset = workers(catalogue)
    kinds = {c.name: (c.unit, True) for c in dataset.counters}
    kinds.update({g.name: (g.unit, False) for g in dataset.quantile_gauges})
    kinds.update({a.name: (a.unit, False) for a in dataset.average_gauges})
    return kinds


def otlp_values(requests: Iterable[ExportMetricsServiceRequest], catalogue: Catalogue) -> SeriesValues:
    """What OTLP requests carried, named as the Prometheus exporter names them; later requests
    overwrite earlier ones. Counters must arrive as cumulative monotonic sums."""
    kinds = _kinds(catalogue)
    out: SeriesValues = {}
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name not in kinds:
                        continue
                    unit, counter = kinds[metric.name]
                    if counter:
                        assert metric.sum.is_monotonic, metric.name
                        assert metric.sum.aggregation_temporality == CUMULATIVE, metric.name
                    points = metric.sum.data_points if counter else metric.gauge.data_points
                    name = prometheus_name(metric.name, unit, counter)
                    for point in points:
                        labels = tuple(
                            sorted(
                                (kv.key.replace(".", "_"), kv.value.string_value) for kv in point.attributes
                            )
                        )
                        value = point.as_double if point.HasField("as_double") else point.as_int
                        out[(name, labels)] = value
    return out


def expected_counters(
    traffic: Traffic,
    catalogue: Catalogue,
    accounts: Iterable[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
) -> SeriesValues:
    out: SeriesValues = {}
    for account in accounts:
        for (script, status), sums in traffic.series_totals(account, start, end, as_of=as_of).items():
            labels = tuple(
                sorted(
                    {
                        "cloud_account_id": account,
                        "faas_name": script,
                        "cloudflare_workers_status": status,
                    }.items()
                )
            )
            for c in workers(catalogue).counters:
                value = sums[c.field]
                out[(prometheus_name(c.name, c.unit, True), labels)] = (
                    value / c.divisor if c.divisor != 1 else value
                )
    return out


def expected_quantiles(
    traffic: Traffic,
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    account: str,
    scripts: Iterable[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
) -> SeriesValues:
    out: SeriesValues = {}
    for script in scripts:
        values = traffic.quantiles(account, script, start, end, as_of=as_of)
        if not values:
            continue
        dataset = workers(catalogue)
        for g in dataset.quantile_gauges:
            for q in quantiles:
                raw = values[dataset.quantile_field(g, q)]
                labels = tuple(
                    sorted({"cloud_account_id": account, "faas_name": script, "quantile": q}.items())
                )
                out[(prometheus_name(g.name, g.unit, False), labels)] = (
                    raw / g.divisor if g.divisor != 1 else raw
                )
    return out


def self_metric(text: str, name: str, label: str) -> dict[str, float]:
    """One of otelbridge's own samples on a /metrics page, by the value of one label."""
    return {
        sample.labels[label]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def api_requests(text: str) -> dict[str, float]:
    """otelbridge_api_requests_total by outcome."""
    return self_metric(text, "otelbridge_api_requests_total", "outcome")
