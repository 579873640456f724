"""OpenTelemetry wiring: resource, instruments from the catalogue, and the MeterProvider.

Instruments are observable: their callbacks only read the current Snapshot, so a collection
(one per poll, feeding the /metrics page and OTLP) never waits on Cloudflare and never does I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    Exemplar,
    ExemplarReservoir,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.util.types import Attributes

from otelbridge import __version__, sdk_storage
from otelbridge.catalogue import AverageGauge, Catalogue, SourcedMetric
from otelbridge.snapshot import Snapshot
from otelbridge.state import new_instance_id

SCOPE = "otelbridge"


def resource(instance_id: str | None = None) -> Resource:
    """service.* and cloud.* attributes; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win.

    `instance_id` is the one kept in the state directory (state.StateStore.instance_id), so that a
    restart continues the same series; a new random one only when nothing is persisted."""
    base = Resource(
        {
            "service.name": "otelbridge",
            "service.version": __version__,
            "service.instance.id": instance_id or new_instance_id(),
            "cloud.provider": "cloudflare",
            "cloud.platform": "cloudflare.workers",
        }
    )
    merged = base.merge(OTELResourceDetector().detect())
    service_name = os.environ.get("OTEL_SERVICE_NAME")
    if service_name:
        merged = merged.merge(Resource({"service.name": service_name}))
    return merged


def cardinality_limits(max_series: int) -> dict[type, int]:
    # The SDK folds series past its limit (2000 by default) into an overflow series. Snapshot
    # capping keeps each collection under max_series per instrument; the limit counts every
    # attribute set the SDK holds, and sdk_storage releases those a collection no longer observed,
    # after that collection's observations went in: at that moment the SDK holds the series of two
    # consecutive snapshots, at most twice max_series. Hence the limit, which is never reached.
    limit = 2 * max_series + 1
    return {ObservableCounter: limit, ObservableGauge: limit}


def _callback(
    current: Callable[[], Snapshot], name: str
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return current().observe(name)

    return observe


def register_instruments(meter: Meter, catalogue: Catalogue, current: Callable[[], Snapshot]) -> None:
    for d in catalogue.enabled:
        for _, c in d.exported_counters:
            meter.create_observable_counter(c.name, [_callback(current, c.name)], c.unit, c.description)
        gauges: tuple[SourcedMetric | AverageGauge, ...] = (
            *d.quantile_gauges,
            *d.average_gauges,
            *d.level_gauges,
        )
        for g in gauges:
            meter.create_observable_gauge(g.name, [_callback(current, g.name)], g.unit, g.description)
    for m in catalogue.self_metrics:
        create = meter.create_observable_counter if m.kind == "counter" else meter.create_observable_gauge
        create(m.name, [_callback(current, m.name)], m.unit, m.description)


class _NoExemplars(ExemplarReservoir):
    """Observations made in a callback carry no trace context, so there is never an exemplar to keep.

    The SDK's default reservoir still costs two locks and a dict per series per reader, and a
    sorted walk per series on every collection: a fifth of the collection time and a sizeable
    share of the memory at 10^5 series. One stateless instance serves every series.
    """

    def offer(self, value: float, time_unix_nano: int, attributes: Attributes, context: Context) -> None:
        return None

    def collect(self, point_attributes: Attributes) -> list[Exemplar]:
        return []


_NO_EXEMPLARS = _NoExemplars()


def _no_exemplar_reservoir(*args: Any, **kwargs: Any) -> ExemplarReservoir:
    return _NO_EXEMPLARS


def _no_exemplars(aggregation_type: type) -> Callable[..., ExemplarReservoir]:
    return _no_exemplar_reservoir


def meter_provider(
    readers: Sequence[MetricReader], catalogue: Catalogue, current: Callable[[], Snapshot], res: Resource
) -> MeterProvider:
    provider = MeterProvider(
        metric_readers=list(readers),
        resource=res,
        views=[View(instrument_name="*", exemplar_reservoir_factory=_no_exemplars)],
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
    register_instruments(provider.get_meter(SCOPE, __version__), catalogue, current)
    sdk_storage.forget_unobserved(provider)
    return provider
