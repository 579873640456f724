"""Timestamped samples of one span of history (a UTC day, or less), as the backfill writes them.

Counters are cumulative from the backfill's start and continuous across spans; each series' samples
are kept in time order, in compact arrays (a day of one-minute samples of 10^4 series is ~10^7
samples), and handed to the sinks (OpenMetrics files, OTLP) one span at a time.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Attributes = tuple[tuple[str, str], ...]  # in the order the snapshot builds them: scope first
SeriesId = tuple[str, Attributes]  # instrument name, attributes


@dataclass(frozen=True)
class Instrument:
    name: str  # the OTel name
    unit: str
    description: str
    kind: Literal["counter", "gauge"]


@dataclass
class Series:
    times: array[int] = field(default_factory=lambda: array("q"))  # epoch seconds, increasing
    values: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class Span:
    """The samples with timestamps in [start, end), or [start, end] for the last span."""

    start: datetime
    end: datetime
    last: bool
    instruments: dict[str, Instrument]
    series: dict[SeriesId, Series] = field(default_factory=dict)
    origin: datetime | None = None  # where the backfill starts: counters count from there

    def add(self, name: str, attributes: Attributes, when: int, value: float) -> None:
        series = self.series.get((name, attributes))
        if series is None:
            series = self.series[(name, attributes)] = Series()
        series.times.append(when)
        series.values.append(value)

    @property
    def samples(self) -> int:
        return sum(len(s.times) for s in self.series.values())

    def by_time(self, slice_seconds: int = 3600) -> Iterator[tuple[int, list[tuple[SeriesId, float]]]]:
        """Every sample, grouped by timestamp in time order (for senders that go time first), one
        slice of time at a time so that only a slice's samples are regrouped at once."""
        first = min((s.times[0] for s in self.series.values() if s.times), default=None)
        last = max((s.times[-1] for s in self.series.values() if s.times), default=None)
        if first is None or last is None:
            return
        for lo in range(first, last + 1, slice_seconds):
            hi = lo + slice_seconds
            out: dict[int, list[tuple[SeriesId, float]]] = {}
            for sid, series in self.series.items():
                for i in range(bisect_left(series.times, lo), bisect_left(series.times, hi)):
                    out.setdefault(series.times[i], []).append((sid, series.values[i]))
            yield from sorted(out.items())
