"""Make the OpenTelemetry SDK forget the series that are no longer observed.

The SDK (1.45) keeps one aggregation per attribute set ever observed by an observable instrument,
per reader, for the life of the MeterProvider; a series that leaves the snapshot stops being
exported but keeps its slot. With Workers scripts coming and going (Workers for Platforms creates
them all the time), the slots of gone series fill the cardinality limit, so live series end up
folded into `otel_metric_overflow`, and memory grows without end.

Every collection observes every live series (the callbacks return the whole snapshot), so an
aggregation left unobserved by a collection's callbacks belongs to a series that is gone. This
module wraps each reader storage's collect() to drop those just before the storage collects
(inside the SDK's collection lock, after the callbacks ran). A series that comes back gets a new
aggregation with a new start time, which is what a counter reset is in OTLP.

It relies on SDK internals, checked by tests/unit/test_sdk_storage.py: MeterProvider.
_measurement_consumer._reader_storages, MetricReaderStorage._instrument_view_instrument_matches,
_ViewInstrumentMatch._attributes_aggregation / _lock, and the aggregations' `_value`, which is None
until an observation arrives and is reset by every collection. If they change, pruning turns
itself off with an error in the log (series then accumulate as without it); nothing else breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import version
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.instrument import _Asynchronous
from opentelemetry.sdk.metrics.export import MetricsData

log = logging.getLogger(__name__)

VERIFIED_SDK = ("1.45.",)  # SDK versions whose internals this was checked against


def _storages(provider: MeterProvider) -> Mapping[Any, Any] | None:
    consumer = getattr(provider, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    if not isinstance(storages, Mapping):
        return None
    for storage in storages.values():
        if not callable(getattr(storage, "collect", None)) or not isinstance(
            getattr(storage, "_instrument_view_instrument_matches", None), dict
        ):
            return None
    return storages


def forget_unobserved(provider: MeterProvider) -> bool:
    """Install the pruning on every reader of `provider`. False (logged) if the SDK is not as expected."""
    storages = _storages(provider)
    if storages is None:
        log.error(
            "this opentelemetry-sdk keeps its metric storage differently: series of scripts that are "
            "gone will not be released (they count against max_series until a restart)"
        )
        return False
    sdk = version("opentelemetry-sdk")
    if not sdk.startswith(VERIFIED_SDK):
        log.warning(
            "opentelemetry-sdk %s: releasing unobserved series was verified with %s only", sdk, VERIFIED_SDK
        )
    for storage in storages.values():
        storage.collect = _pruning(storage, storage.collect)
    return True


def stored_series(provider: MeterProvider) -> int:
    """Attribute sets the SDK holds for the provider's observable instruments, over every reader."""
    total = 0
    for storage in (_storages(provider) or {}).values():
        for instrument, matches in list(storage._instrument_view_instrument_matches.items()):
            if isinstance(instrument, _Asynchronous):
                total += sum(len(m._attributes_aggregation) for m in matches)
    return total


def _pruning(storage: Any, collect: Callable[[], MetricsData | None]) -> Callable[[], MetricsData | None]:
    enabled = True

    def pruning_collect() -> MetricsData | None:
        nonlocal enabled
        if enabled:
            try:
                _prune(storage)
            except (AttributeError, TypeError) as exc:
                enabled = False
                log.error("cannot release unobserved series from the SDK storage (%s); pruning is off", exc)
        return collect()

    return pruning_collect


def _prune(storage: Any) -> None:
    for instrument, matches in list(storage._instrument_view_instrument_matches.items()):
        if not isinstance(instrument, _Asynchronous):
            continue
        for match in matches:
            with match._lock:
                held = match._attributes_aggregation
                # `_value` is None until an observation of this collection arrives (AttributeError
                # if an SDK names it otherwise: pruning then turns off).
                gone = [key for key, aggregation in held.items() if aggregation._value is None]
                for key in gone:
                    del held[key]
