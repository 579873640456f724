"""The immutable snapshot that instrument callbacks read.

The bridge builds a new Snapshot after every cycle and publishes it by swapping one reference;
callbacks (which run on the page render's worker thread) only read it. All unit
conversion and series capping happens here, once per cycle, not once per collection.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.metrics import Observation

from otelbridge import exact
from otelbridge.catalogue import ACCOUNT, QUANTILE, SCRIPT, STATUS, Catalogue, SourcedMetric
from otelbridge.cloudflare.answers import QuantileRow
from otelbridge.ledger import AccountLedger, SeriesKey, Vector


@dataclass(frozen=True)
class AccountHealth:
    up: bool
    poll_seconds: float
    quantiles: Mapping[str, QuantileRow]  # last good quantile answer, by script


@dataclass(frozen=True)
class Health:
    """Process-wide self-telemetry inputs."""

    api_requests: Mapping[str, int] = field(default_factory=dict)  # outcome -> count
    rate_limit_used: int = 0
    otlp_exports: Mapping[str, int] = field(default_factory=dict)  # result -> count
    discovery_up: bool = True  # the accounts to poll are known (configured or discovered)
    state_up: bool | None = None  # the last state save succeeded; None when nothing is persisted
    state_save_failures: int = 0


class Snapshot:
    """Observations by instrument name. The Workers series are materialised on first use.

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
        workers: Callable[[], Mapping[str, tuple[Observation, ...]]] | None = None,
    ) -> None:
        self._points = points
        self.series = series
        self.dropped = dropped
        self._workers = workers
        self._lock = threading.Lock()

    @property
    def points(self) -> Mapping[str, tuple[Observation, ...]]:
        if self._workers is not None:
            with self._lock:  # with several readers, any may arrive first
                if self._workers is not None:
                    self._points = {**self._workers(), **self._points}
                    self._workers = None
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
    """What one account contributes to the Workers series, copied at build time."""

    totals: Mapping[SeriesKey, Vector]
    quantiles: Mapping[str, QuantileRow]
    exact_fields: frozenset[int] = frozenset()  # indices of fields held in exact units (ledger.floats)


def _exact_sum(values: list[float]) -> float:
    """Integers add exactly; floats are summed correctly rounded, whatever their order."""
    return sum(values) if all(isinstance(v, int) for v in values) else math.fsum(values)


def per_script(totals: Mapping[SeriesKey, Vector], indices: tuple[int, ...]) -> dict[str, Vector]:
    """Totals summed over the status breakdown, for counters exported without it."""
    groups: dict[str, list[Vector]] = {}
    for (script, _status), vector in totals.items():
        groups.setdefault(script, []).append(vector)
    return {
        script: tuple(_exact_sum([v[i] for v in vectors]) for i in indices)
        for script, vectors in groups.items()
    }


def _exported(counter: SourcedMetric, index: int, value: float, exact_fields: frozenset[int]) -> float:
    """A ledger value in the exported unit. Exact float sums are rounded here, once, unit included."""
    if index in exact_fields:
        return exact.quotient(int(value), counter.divisor)
    return counter.exported(value)


def _workers_points(
    catalogue: Catalogue, quantiles: tuple[str, ...], rows: Mapping[str, _Rows], max_series: int
) -> dict[str, tuple[Observation, ...]]:
    out = _Capped(max_series)
    by_status = tuple((i, c) for i, c in catalogue.exported_counters if STATUS in c.attributes)
    by_script_only = tuple((i, c) for i, c in catalogue.exported_counters if STATUS not in c.attributes)
    for account in sorted(rows):
        row_set = rows[account]
        totals, by_script, exact_fields = row_set.totals, row_set.quantiles, row_set.exact_fields
        if by_status:
            for (script, status), vector in sorted(totals.items()):
                attrs = {ACCOUNT: account, SCRIPT: script, STATUS: status}
                for i, counter in by_status:
                    out.add(counter.name, _exported(counter, i, vector[i], exact_fields), attrs)
        if by_script_only:
            summed = per_script(totals, tuple(i for i, _ in by_script_only))
            for script, values in sorted(summed.items()):
                attrs = {ACCOUNT: account, SCRIPT: script}
                for (i, counter), value in zip(by_script_only, values, strict=True):
                    out.add(counter.name, _exported(counter, i, value, exact_fields), attrs)
        for script in sorted(by_script):
            row = by_script[script]
            base = {ACCOUNT: account, SCRIPT: script}
            # One attribute dict per quantile, shared by the gauges: 10^5 series, a fifth of the dicts.
            per_quantile = {q: {**base, QUANTILE: q} for q in quantiles}
            for gauge in catalogue.quantile_gauges:
                for q in quantiles:
                    raw = row.values[catalogue.quantile_field(gauge, q)]
                    out.add(gauge.name, gauge.exported(raw), per_quantile[q])
            for avg in catalogue.average_gauges:
                out.add(avg.name, row.averages[avg.field], base)
    return {name: tuple(obs) for name, obs in out.points.items()}


def _count(
    catalogue: Catalogue, quantiles: tuple[str, ...], rows: Mapping[str, _Rows], max_series: int
) -> tuple[int, int]:
    """(series kept, series dropped), as _workers_points will cap them, without building them."""
    keys = sum(len(r.totals) for r in rows.values())
    counted_scripts = sum(len({script for script, _ in r.totals}) for r in rows.values())
    scripts = sum(len(r.quantiles) for r in rows.values())
    attempts = [keys if STATUS in c.attributes else counted_scripts for _, c in catalogue.exported_counters]
    attempts += [scripts * len(quantiles)] * len(catalogue.quantile_gauges)
    attempts += [scripts] * len(catalogue.average_gauges)
    attempts = [n for n in attempts if n]
    kept = sum(min(n, max_series) for n in attempts)
    return kept, sum(attempts) - kept


def build(
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    ledgers: Mapping[str, AccountLedger],
    health: Mapping[str, AccountHealth],
    process: Health,
    now: datetime,
    max_series: int,
) -> Snapshot:
    rows = {
        account: _Rows(
            dict(ledger.totals),
            dict(health[account].quantiles) if account in health else {},
            frozenset(ledger.float_index),
        )
        for account, ledger in ledgers.items()
    }
    workers_series, dropped = _count(catalogue, quantiles, rows, max_series)
    self_points: dict[str, list[Observation]] = {}

    def put(name: str, value: float, attributes: dict[str, str] | None = None) -> None:
        self_points.setdefault(name, []).append(Observation(value, attributes or {}))

    for account, ledger in sorted(ledgers.items()):
        attrs = {ACCOUNT: account}
        h = health.get(account)
        put("otelbridge.up", 1 if h is not None and h.up else 0, attrs)
        if h is not None:
            put("otelbridge.poll.duration", h.poll_seconds, attrs)
        put("otelbridge.watermark.lag", max(0.0, (now - ledger.counted).total_seconds()), attrs)
        put("otelbridge.gap", ledger.gap_minutes * 60, attrs)  # whole minutes, exported in seconds
        put("otelbridge.corrections", ledger.corrections, attrs)
        put("otelbridge.series.forgotten", ledger.forgotten, attrs)
    for outcome, count in sorted(process.api_requests.items()):
        put("otelbridge.api.requests", count, {"outcome": outcome})
    for result, count in sorted(process.otlp_exports.items()):
        put("otelbridge.otlp.exports", count, {"result": result})
    put("otelbridge.ratelimit.used", process.rate_limit_used)
    put("otelbridge.discovery.up", 1 if process.discovery_up else 0)
    if process.state_up is not None:
        put("otelbridge.state.up", 1 if process.state_up else 0)
        put("otelbridge.state.save.failures", process.state_save_failures)
    put("otelbridge.series", workers_series)
    put("otelbridge.series.dropped", dropped)

    return Snapshot(
        points={name: tuple(obs) for name, obs in self_points.items()},
        series=workers_series,
        dropped=dropped,
        workers=lambda: _workers_points(catalogue, quantiles, rows, max_series),
    )
