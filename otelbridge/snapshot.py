"""The immutable snapshot that instrument callbacks read.

The bridge builds a new Snapshot after every cycle and publishes it by swapping one reference;
callbacks (which run on the page render's worker thread) only read it. All unit
conversion and series capping happens here, once per cycle, not once per collection.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.metrics import Observation

from otelbridge import exact
from otelbridge.catalogue import ACCOUNT, DATASET, QUANTILE, Catalogue, Dataset, SourcedMetric
from otelbridge.cloudflare.answers import LevelRows, QuantileRow
from otelbridge.ledger import Ledger, SeriesKey, Vector


@dataclass(frozen=True)
class AccountHealth:
    up: bool
    poll_seconds: float
    quantiles: Mapping[str, Mapping[SeriesKey, QuantileRow]]  # by dataset: last good gauge answer
    levels: Mapping[str, LevelRows] = field(default_factory=dict)  # by dataset: last good levels


@dataclass(frozen=True)
class ZoneScope:
    """One zone's ledgers and what its series carry besides its tag."""

    account: str  # the owning account's tag
    ledgers: Mapping[str, Ledger]  # by dataset
    health: AccountHealth
    attributes: Mapping[str, str]  # e.g. the zone's name and account, on every series of the zone
    skipped: tuple[str, ...] = ()  # datasets its plan lacks


@dataclass(frozen=True)
class Health:
    """Process-wide self-telemetry inputs."""

    api_requests: Mapping[str, int] = field(default_factory=dict)  # outcome -> count
    rate_limit_used: int = 0
    otlp_exports: Mapping[str, int] = field(default_factory=dict)  # result -> count
    discovery_up: bool = True  # the accounts to poll are known (configured or discovered)
    state_up: bool | None = None  # the last state save succeeded; None when nothing is persisted
    state_save_failures: int = 0
    split_requests: Mapping[str, int] = field(default_factory=dict)  # account -> requests beyond one


class Snapshot:
    """Observations by instrument name. The datasets' series are materialised on first use.

    build() runs on the event loop after every poll; turning 10^5 ledger rows into Observations
    there blocked the loop for half a second. So build() only copies the rows (cheap: tuples are
    immutable) and counts the series, and the first collection (the page render, on a worker
    thread) makes the Observations, once, for every reader.
    """

    def __init__(
        self,
        points: Mapping[str, tuple[Observation, ...]],
        series: int = 0,
        dropped: int = 0,
        datasets: Callable[[], Mapping[str, tuple[Observation, ...]]] | None = None,
    ) -> None:
        self._points = points
        self.series = series
        self.dropped = dropped
        self._datasets = datasets
        self._lock = threading.Lock()

    @property
    def points(self) -> Mapping[str, tuple[Observation, ...]]:
        if self._datasets is not None:
            with self._lock:  # with several readers, any may arrive first
                if self._datasets is not None:
                    self._points = {**self._datasets(), **self._points}
                    self._datasets = None
        return self._points

    def observe(self, name: str) -> tuple[Observation, ...]:
        return self.points.get(name, ())


EMPTY = Snapshot(points={})


class _Capped:
    """Collects observations per instrument, refusing more than max_series of each."""

    def __init__(self, max_series: int) -> None:
        self.max_series = max_series
        self.points: dict[str, list[Observation]] = {}
        self.dropped = 0

    def add(self, name: str, value: float, attributes: dict[str, str]) -> None:
        bucket = self.points.setdefault(name, [])
        if len(bucket) >= self.max_series:
            self.dropped += 1
            return
        bucket.append(Observation(value, attributes))


@dataclass(frozen=True)
class _Rows:
    """What one scope (account or zone) contributes to a dataset's series, copied at build time."""

    totals: Mapping[SeriesKey, Vector]
    quantiles: Mapping[SeriesKey, QuantileRow]
    levels: LevelRows = field(default_factory=dict)
    exact_fields: frozenset[int] = frozenset()  # indices of fields held in exact units (ledger.floats)
    attributes: Mapping[str, str] = field(default_factory=dict)  # the scope's other attributes


def _exact_sum(values: list[float]) -> float:
    """Integers add exactly; floats are summed correctly rounded, whatever their order."""
    return sum(values) if all(isinstance(v, int) for v in values) else math.fsum(values)


def project(
    totals: Mapping[SeriesKey, Vector], kept: tuple[int, ...], indices: tuple[int, ...]
) -> dict[SeriesKey, Vector]:
    """Totals summed over the key positions not in `kept`, for counters exported without them."""
    groups: dict[SeriesKey, list[Vector]] = {}
    for key, vector in totals.items():
        groups.setdefault(tuple(key[p] for p in kept), []).append(vector)
    return {
        key: tuple(_exact_sum([v[i] for v in vectors]) for i in indices) for key, vectors in groups.items()
    }


def _exported(counter: SourcedMetric, index: int, value: float, exact_fields: frozenset[int]) -> float:
    """A ledger value in the exported unit. Exact float sums are rounded here, once, unit included."""
    if index in exact_fields:
        return exact.quotient(int(value), counter.divisor)
    return counter.exported(value)


def kept_positions(dataset: Dataset, counter: SourcedMetric) -> tuple[int, ...]:
    """Positions of the counter key a counter is exported with: all but the optional ones it drops."""
    optional = dataset.optional
    return tuple(p for p, a in enumerate(dataset.counter_key) if a not in optional or a in counter.attributes)


def _counter_groups(dataset: Dataset) -> dict[tuple[int, ...], list[tuple[int, SourcedMetric]]]:
    """Exported counters by the key positions they keep (the full key first)."""
    groups: dict[tuple[int, ...], list[tuple[int, SourcedMetric]]] = {}
    for i, c in dataset.exported_counters:
        groups.setdefault(kept_positions(dataset, c), []).append((i, c))
    return dict(sorted(groups.items(), key=lambda item: -len(item[0])))


Point = tuple[str, dict[str, str], float]  # instrument name, attributes, value


def counter_points(
    dataset: Dataset,
    scope_attrs: Mapping[str, str],
    totals: Mapping[SeriesKey, Vector],
    exact_fields: frozenset[int],
) -> Iterator[Point]:
    """The exported counters of one scope's totals: projected, in the exported unit. `scope_attrs`:
    the scope's attributes (its tag, and a zone's name)."""
    counter_key = dataset.counter_key
    for kept, counters in _counter_groups(dataset).items():
        names = tuple(counter_key[p] for p in kept)
        if len(kept) == len(counter_key):
            series: Mapping[SeriesKey, Vector] = totals
            positions = tuple(i for i, _ in counters)
        else:
            series = project(totals, kept, tuple(i for i, _ in counters))
            positions = tuple(range(len(counters)))
        for key, vector in sorted(series.items()):
            attrs = {**scope_attrs, **dict(zip(names, key, strict=True))}
            for (i, counter), p in zip(counters, positions, strict=True):
                yield counter.name, attrs, _exported(counter, i, vector[p], exact_fields)


def gauge_points(
    dataset: Dataset,
    scope_attrs: Mapping[str, str],
    rows: Mapping[SeriesKey, QuantileRow],
    quantiles: tuple[str, ...],
) -> Iterator[Point]:
    """Quantile and average gauges of one scope: Cloudflare's values per group, never merged."""
    for key in sorted(rows):
        row = rows[key]
        base = {**scope_attrs, **dict(zip(dataset.gauge_key, key, strict=True))}
        # One attribute dict per quantile, shared by the gauges: 10^5 series, a fifth of the dicts.
        per_quantile = {q: {**base, QUANTILE: q} for q in quantiles}
        for gauge in dataset.quantile_gauges:
            for q in quantiles:
                yield (
                    gauge.name,
                    per_quantile[q],
                    gauge.exported(row.values[dataset.quantile_field(gauge, q)]),
                )
        for avg in dataset.average_gauges:
            yield avg.name, base, row.averages[avg.field]


def _dataset_points(
    dataset: Dataset, quantiles: tuple[str, ...], rows: Mapping[str, _Rows], out: _Capped
) -> None:
    scope_attribute, gauge_key = dataset.scope_attribute, dataset.gauge_key
    for scope in sorted(rows):
        row_set = rows[scope]
        scope_attrs = {scope_attribute: scope, **row_set.attributes}
        for name, attrs, value in counter_points(dataset, scope_attrs, row_set.totals, row_set.exact_fields):
            out.add(name, value, attrs)
        for name, attrs, value in gauge_points(dataset, scope_attrs, row_set.quantiles, quantiles):
            out.add(name, value, attrs)
        for key in sorted(row_set.levels):
            values = row_set.levels[key]
            base = {**scope_attrs, **dict(zip(gauge_key, key, strict=True))}
            for level in dataset.level_gauges:
                if level.name in values:
                    out.add(level.name, level.exported(values[level.name]), base)


def _points(
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    rows: Mapping[str, Mapping[str, _Rows]],
    max_series: int,
) -> dict[str, tuple[Observation, ...]]:
    out = _Capped(max_series)
    for dataset in catalogue.datasets:
        if dataset.dataset in rows:
            _dataset_points(dataset, quantiles, rows[dataset.dataset], out)
    return {name: tuple(obs) for name, obs in out.points.items()}


def _count(
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    rows: Mapping[str, Mapping[str, _Rows]],
    max_series: int,
) -> tuple[int, int]:
    """(series kept, series dropped), as _points will cap them, without building them."""
    attempts: list[int] = []
    for dataset in catalogue.datasets:
        by_scope = rows.get(dataset.dataset, {}).values()
        for _, c in dataset.exported_counters:
            positions = kept_positions(dataset, c)
            attempts.append(sum(len({tuple(k[p] for p in positions) for k in r.totals}) for r in by_scope))
        gauge_rows = sum(len(r.quantiles) for r in by_scope)
        attempts += [gauge_rows * len(quantiles)] * len(dataset.quantile_gauges)
        attempts += [gauge_rows] * len(dataset.average_gauges)
        for level in dataset.level_gauges:
            attempts.append(sum(sum(level.name in v for v in r.levels.values()) for r in by_scope))
    attempts = [n for n in attempts if n]
    kept = sum(min(n, max_series) for n in attempts)
    return kept, sum(attempts) - kept


def _copy(ledger: Ledger, name: str, h: AccountHealth | None, attributes: Mapping[str, str]) -> _Rows:
    return _Rows(
        dict(ledger.totals),
        dict(h.quantiles.get(name, {})) if h is not None else {},
        dict(h.levels.get(name, {})) if h is not None else {},
        frozenset(ledger.float_index),
        attributes,
    )


def build(
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    ledgers: Mapping[str, Mapping[str, Ledger]],
    health: Mapping[str, AccountHealth],
    process: Health,
    now: datetime,
    max_series: int,
    zones: Mapping[str, ZoneScope] | None = None,
) -> Snapshot:
    """`ledgers`: by account, then by dataset; `zones`: by zone tag. A dataset is of one scope, so
    its series come from accounts or from zones, never both."""
    zones = zones or {}
    rows: dict[str, dict[str, _Rows]] = {}
    for account, by_dataset in ledgers.items():
        h = health.get(account)
        for name, ledger in by_dataset.items():
            rows.setdefault(name, {})[account] = _copy(ledger, name, h, {})
    for tag, z in zones.items():
        for name, ledger in z.ledgers.items():
            rows.setdefault(name, {})[tag] = _copy(ledger, name, z.health, z.attributes)
    series, dropped = _count(catalogue, quantiles, rows, max_series)
    self_points: dict[str, list[Observation]] = {}

    def put(name: str, value: float, attributes: dict[str, str] | None = None) -> None:
        self_points.setdefault(name, []).append(Observation(value, attributes or {}))

    by_account: dict[str, list[ZoneScope]] = {}
    for z in zones.values():
        by_account.setdefault(z.account, []).append(z)
    for account, by_dataset in sorted(ledgers.items()):
        attrs = {ACCOUNT: account}
        h = health.get(account)
        put("otelbridge.up", 1 if h is not None and h.up else 0, attrs)
        if h is not None:
            put("otelbridge.poll.duration", h.poll_seconds, attrs)
        owned = by_account.get(account, [])
        # the account's watermark, gaps and corrections include its zones'
        # (a dataset a zone's plan lacks is never polled: its ledger stands still and is left out)
        account_ledgers = [
            *by_dataset.values(),
            *(ledger for z in owned for name, ledger in z.ledgers.items() if name not in z.skipped),
        ]
        if owned:
            put("otelbridge.zones", len(owned), attrs)
            put("otelbridge.zones.up", sum(z.health.up for z in owned), attrs)
            skipped = Counter(name for z in owned for name in z.skipped)
            for name, count in sorted(skipped.items()):
                put("otelbridge.datasets.skipped", count, {**attrs, DATASET: name})
        put("otelbridge.api.requests.split", process.split_requests.get(account, 0), attrs)
        counted = min((ledger.counted for ledger in account_ledgers), default=now)
        put("otelbridge.watermark.lag", max(0.0, (now - counted).total_seconds()), attrs)
        # whole minutes, exported in seconds
        put("otelbridge.gap", sum(ledger.gap_minutes for ledger in account_ledgers) * 60, attrs)
        put("otelbridge.corrections", sum(ledger.corrections for ledger in account_ledgers), attrs)
        put("otelbridge.series.forgotten", sum(ledger.forgotten for ledger in account_ledgers), attrs)
    for outcome, count in sorted(process.api_requests.items()):
        put("otelbridge.api.requests", count, {"outcome": outcome})
    for result, count in sorted(process.otlp_exports.items()):
        put("otelbridge.otlp.exports", count, {"result": result})
    put("otelbridge.ratelimit.used", process.rate_limit_used)
    put("otelbridge.discovery.up", 1 if process.discovery_up else 0)
    if process.state_up is not None:
        put("otelbridge.state.up", 1 if process.state_up else 0)
        put("otelbridge.state.save.failures", process.state_save_failures)
    put("otelbridge.series", series)
    put("otelbridge.series.dropped", dropped)

    return Snapshot(
        points={name: tuple(obs) for name, obs in self_points.items()},
        series=series,
        dropped=dropped,
        datasets=lambda: _points(catalogue, quantiles, rows, max_series),
    )
