"""The immutable snapshot that instrument callbacks read.

The poller builds a new Snapshot after every cycle and publishes it by swapping one reference;
callbacks (which run on the HTTP server's and the OTLP reader's threads) only read it. All unit
conversion and series capping happens here, once per cycle, not once per collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.metrics import Observation

from otelbridge.catalogue import ACCOUNT, QUANTILE, SCRIPT, STATUS, Catalogue
from otelbridge.cloudflare.answers import QuantileRow
from otelbridge.ledger import AccountLedger


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


@dataclass(frozen=True)
class Snapshot:
    points: Mapping[str, tuple[Observation, ...]]  # instrument name -> observations
    series: int = 0
    dropped: int = 0

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


def build(
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
    ledgers: Mapping[str, AccountLedger],
    health: Mapping[str, AccountHealth],
    process: Health,
    now: datetime,
    max_series: int,
) -> Snapshot:
    out = _Capped(max_series)
    for account in sorted(ledgers):
        ledger = ledgers[account]
        for (script, status), vector in sorted(ledger.totals.items()):
            attrs = {ACCOUNT: account, SCRIPT: script, STATUS: status}
            for counter, value in zip(catalogue.counters, vector, strict=True):
                out.add(counter.name, value / counter.divisor if counter.divisor != 1 else value, attrs)
        rows = health[account].quantiles if account in health else {}
        for script in sorted(rows):
            row = rows[script]
            base = {ACCOUNT: account, SCRIPT: script}
            for gauge in catalogue.quantile_gauges:
                for q in quantiles:
                    raw = row.values[catalogue.quantile_field(gauge, q)]
                    out.add(
                        gauge.name, raw / gauge.divisor if gauge.divisor != 1 else raw, {**base, QUANTILE: q}
                    )
            for avg in catalogue.average_gauges:
                out.add(avg.name, row.averages[avg.field], base)

    workers_series = sum(len(v) for v in out.points.values())
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
        put("otelbridge.gap.minutes", ledger.gap_minutes, attrs)
        put("otelbridge.counter.corrections", ledger.corrections, attrs)
    for outcome, count in sorted(process.api_requests.items()):
        put("otelbridge.api.requests", count, {"outcome": outcome})
    put("otelbridge.ratelimit.used", process.rate_limit_used)
    put("otelbridge.series", workers_series)
    put("otelbridge.series.dropped", out.dropped)

    points = {name: tuple(obs) for name, obs in out.points.items()}
    points.update({name: tuple(obs) for name, obs in self_points.items()})
    return Snapshot(points=points, series=workers_series, dropped=out.dropped)
