"""Synthetic invocation events and the aggregations Cloudflare computes over them.

Each (account, script, status, minute) has at most 8 representative events, each standing for
`weight` identical invocations. By default float metrics are dyadic rationals that are also exact
float32 values, so sums are exact in any order and quantiles (which are event values) survive the
float32 rounding unchanged: P25 <= ... <= P999 <= max and min <= P25 always hold. With the
`decimal_floats` knob they are decimals, whose float sums depend on the order of additions; the
float sums are then computed exactly (fractions) and rounded once, and exact_float_sums() is the
ground truth.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import NamedTuple

STATUSES = ("success", "clientDisconnected", "scriptThrewException", "exceededResources", "internalError")
ERROR_STATUSES = frozenset(STATUSES[1:])

SUM_FIELDS = (
    "requests",
    "errors",
    "subrequests",
    "clientDisconnects",
    "cpuTimeUs",
    "wallTime",
    "duration",
    "requestDuration",
    "responseBodySize",
)
# Per-event metrics behind quantiles/max/min, keyed by their GraphQL stem.
METRICS = ("cpuTime", "wallTime", "duration", "requestDuration", "responseBodySize")
QUANTILES = (
    ("P25", 250),
    ("P50", 500),
    ("P75", 750),
    ("P90", 900),
    ("P95", 950),
    ("P99", 990),
    ("P999", 999),
)
QUANTILE_FIELDS = tuple(m + q for m in METRICS for q, _ in QUANTILES)

Number = int | float


class Event(NamedTuple):
    script: int  # index into the account's scripts
    status: str
    minute: int  # epoch minute
    second: int
    colo: str
    version: str
    weight: int  # invocations this event stands for
    sampled_weight: int  # Cloudflare's estimate under sampling: a multiple of `interval`, maybe 0
    interval: int  # sample interval when sampling is on
    lag: float  # arrival after the minute ends, as a fraction of the ingestion delay
    cpuTime: int  # µs
    wallTime: int  # µs
    duration: float  # GB*s, multiple of 2**-16
    requestDuration: float  # µs, multiple of 2**-4
    responseBodySize: int  # bytes
    subrequests: int  # per invocation


_FIELD_INDEX = {name: i for i, name in enumerate(Event._fields)}

# (weight, interval, event): an event as seen by one query, after visibility and sampling.
Seen = tuple[int, int, Event]


def float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def exact_float_sums(seen: Iterable[Seen]) -> dict[str, Fraction]:
    """The float fields' sums as exact rationals of the events' float values."""
    duration = request_duration = Fraction(0)
    for w, _, e in seen:
        duration += w * Fraction(e.duration)
        request_duration += w * Fraction(e.requestDuration)
    return {"duration": duration, "requestDuration": request_duration}


def sums(seen: Sequence[Seen], exact: bool = False) -> dict[str, Number]:
    """`sum { ... }` of a group. `exact`: float fields are the exact sums rounded once (needed when
    event values are not dyadic; by default float addition is already exact)."""
    out = _sums(seen)
    if exact:
        out.update({name: float(value) for name, value in exact_float_sums(seen).items()})
    return out


def _sums(seen: Iterable[Seen]) -> dict[str, Number]:
    requests = errors = subrequests = disconnects = cpu = wall = body = 0
    duration = request_duration = 0.0
    for w, _, e in seen:
        requests += w
        if e.status in ERROR_STATUSES:
            errors += w
            if e.status == "clientDisconnected":
                disconnects += w
        subrequests += w * e.subrequests
        cpu += w * e.cpuTime
        wall += w * e.wallTime
        body += w * e.responseBodySize
        duration += w * e.duration
        request_duration += w * e.requestDuration
    return {
        "requests": requests,
        "errors": errors,
        "subrequests": subrequests,
        "clientDisconnects": disconnects,
        "cpuTimeUs": cpu,
        "wallTime": wall,
        "duration": duration,
        "requestDuration": request_duration,
        "responseBodySize": body,
    }


def metric_quantiles(seen: Sequence[Seen], metric: str) -> dict[str, float]:
    """Weighted quantiles of one metric over the raw events of the whole group (lower nearest rank)."""
    total = sum(w for w, _, _ in seen)
    index = _FIELD_INDEX[metric]
    ordered = sorted([(e[index], w) for w, _, e in seen])
    out: dict[str, float] = {}
    cum = i = 0
    for suffix, permille in QUANTILES:
        # smallest value whose cumulative weight reaches permille/1000 of the total, in integers
        while cum * 1000 < permille * total:
            cum += ordered[i][1]
            i += 1
        out[metric + suffix] = float32(float(ordered[i - 1][0]))
    return out


def quantiles(seen: Sequence[Seen]) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in METRICS:
        out.update(metric_quantiles(seen, metric))
    return out


class LazyQuantiles(Mapping[str, float]):
    """`quantiles { ... }` of a group, computing a metric only when one of its fields is read."""

    def __init__(self, seen: Sequence[Seen]) -> None:
        self._seen = seen
        self._done: dict[str, float] = {}

    def __getitem__(self, field: str) -> float:
        if field not in self._done:
            metric = field.rstrip("0123456789").removesuffix("P")
            if metric not in METRICS:
                raise KeyError(field)
            self._done.update(metric_quantiles(self._seen, metric))
        return self._done[field]

    def __iter__(self) -> Iterator[str]:
        return iter(QUANTILE_FIELDS)

    def __len__(self) -> int:
        return len(QUANTILE_FIELDS)


def extremes(seen: Sequence[Seen], pick: str) -> dict[str, float]:
    choose = max if pick == "max" else min
    return {m: float(choose(getattr(e, m) for _, _, e in seen)) for m in METRICS}


def sample_interval(seen: Iterable[Seen]) -> float:
    """Mean sample interval over the stored (sampled) rows the group's events stand for."""
    weight = rows = 0
    for w, interval, _ in seen:
        weight += w
        rows += w // interval
    return weight / rows if rows else 1.0
