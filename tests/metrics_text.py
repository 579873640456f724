"""Reading what otelbridge exports, for assertions: Prometheus text and SDK in-memory data."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from otelbridge.catalogue import Catalogue
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Traffic
from tests.datasets import workers

SeriesValues = dict[tuple[str, tuple[tuple[str, str], ...]], float]
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


def sdk_values(reader: InMemoryMetricReader, catalogue: Catalogue) -> SeriesValues:
    """The same view from an SDK reader, named as the Prometheus exporter names them."""
    dataset = workers(catalogue)
    kinds = {c.name: (c.unit, True) for c in dataset.counters}
    kinds.update({g.name: (g.unit, False) for g in dataset.quantile_gauges})
    kinds.update({a.name: (a.unit, False) for a in dataset.average_gauges})
    out: SeriesValues = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name not in kinds:
                    continue
                unit, counter = kinds[metric.name]
                name = prometheus_name(metric.name, unit, counter)
                for point in metric.data.data_points:
                    labels = tuple(sorted((k.replace(".", "_"), str(v)) for k, v in point.attributes.items()))
                    out[(name, labels)] = point.value  # type: ignore[union-attr]
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
