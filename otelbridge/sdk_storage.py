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

While it is there, it also rebuilds the keys of new aggregations from shared pieces (_SharedPairs):
they are most of the SDK's memory per series.

It relies on SDK internals, checked by tests/unit/test_sdk_storage.py: MeterProvider.
_measurement_consumer._reader_storages, MetricReaderStorage._instrument_view_instrument_matches,
_ViewInstrumentMatch._attributes_aggregation / _lock, its keys ("mapping", ((name, hashed value),
...)), and the aggregations' `_value`, which is None
until an observation arrives and is reset by every collection. If they change, pruning turns
itself off with an error in the log (series then accumulate as without it); nothing else breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
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


def _observable_matches(storage: Any) -> Iterator[Any]:
    """The storage's view-instrument matches of observable instruments (those it prunes)."""
    for instrument, matches in list(storage._instrument_view_instrument_matches.items()):
        if isinstance(instrument, _Asynchronous):
            yield from matches


def stored_series(provider: MeterProvider) -> int:
    """Attribute sets the SDK holds for the provider's observable instruments, over every reader."""
    return sum(
        len(m._attributes_aggregation)
        for storage in (_storages(provider) or {}).values()
        for m in _observable_matches(storage)
    )


def _pruning(storage: Any, collect: Callable[[], MetricsData | None]) -> Callable[[], MetricsData | None]:
    enabled = True
    pairs = _SharedPairs()

    def pruning_collect() -> MetricsData | None:
        nonlocal enabled
        if enabled:
            try:
                _prune(storage, pairs)
            except (AttributeError, TypeError, ValueError) as exc:
                enabled = False
                log.error("cannot release unobserved series from the SDK storage (%s); pruning is off", exc)
        return collect()

    return pruning_collect


class _SharedPairs:
    """One instance of each (attribute, value) pair in the SDK's keys of its aggregations.

    The SDK keys each series by its attributes hashed into nested tuples, ("mapping", ((name,
    ("str", value)), ...)): two tuples per attribute, ~0.6 kB per series, most of the SDK's memory
    per series. The pairs repeat across series (an account's tag, a script's name, a status), so a
    stored key is rebuilt from shared pairs (an equal key: lookups are unchanged). Pairs of series
    that are gone are dropped when the table is rebuilt from the stored keys, once they could be
    half of it.
    """

    def __init__(self) -> None:
        self.table: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.released = 0  # keys deleted since the table was built

    def share(self, held: dict[Any, Any]) -> None:
        """Rebuild the keys added since the last call (they are the last ones in `held`)."""
        table = self.table
        fresh = []
        for key in reversed(held):
            kind, pairs = key
            if kind != "mapping" or not isinstance(pairs, tuple):  # pruning turns off
                raise TypeError(f"aggregation key {type(key).__name__} of another shape")
            if not pairs:
                continue  # no attributes: nothing to share
            if table.get(pairs[0]) is pairs[0]:
                break  # shared already, as is every key before it
            fresh.append(key)
        for key in reversed(fresh):  # in insertion order, so series keep their order
            kind, pairs = key
            held[(kind, tuple([table.setdefault(p, p) for p in pairs]))] = held.pop(key)

    def rebuild_if_stale(self, storage_keys: Iterable[Any], live: int) -> None:
        """Build the table again from `storage_keys` (read only then) once the keys released since
        it was built outnumber the `live` ones."""
        if self.released <= live:
            return
        self.table = {p: p for key in storage_keys for p in key[1]}
        self.released = 0


def _prune(storage: Any, pairs: _SharedPairs) -> None:
    live = 0
    for match in _observable_matches(storage):
        with match._lock:
            held = match._attributes_aggregation
            # `_value` is None until an observation of this collection arrives (AttributeError
            # if an SDK names it otherwise: pruning then turns off).
            gone = [key for key, aggregation in held.items() if aggregation._value is None]
            for key in gone:
                del held[key]
            pairs.released += len(gone)
            pairs.share(held)
            live += len(held)
    # Under the SDK's collection lock, as the rest: no measurement arrives meanwhile.
    pairs.rebuild_if_stale(
        (key for match in _observable_matches(storage) for key in match._attributes_aggregation), live
    )
