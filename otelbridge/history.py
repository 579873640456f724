"""A short, bounded memory of what each poll settled, for the status page's charts. Pure logic.

Per account, one point per poll that made minutes final: its minute range, the account's requests
and errors in it, and those of its busiest scripts. Points are dropped once they end more than an
hour before the newest one, at most MAX_POINTS are kept and each keeps at most TOP_PER_POINT
scripts, so memory does not grow with time or with the number of series. Recording costs one
pass over the rows the poll fetched anyway, not over the ledger, and can run off the event loop.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from otelbridge.ledger import SeriesKey, Vector
from otelbridge.snapshot import project
from otelbridge.windows import MINUTE, Range

WINDOW = timedelta(hours=1)
MAX_POINTS = 720  # an hour of 5-second polls
TOP_PER_POINT = 25


@dataclass(frozen=True)
class Point:
    start: datetime  # the settled minutes [start, end)
    end: datetime
    requests: float
    errors: float
    scripts: Mapping[str, tuple[float, float]]  # the busiest scripts only: name -> (requests, errors)

    @property
    def minutes(self) -> int:
        return max(1, int((self.end - self.start) / MINUTE))


@dataclass(frozen=True)
class LastPoll:
    at: datetime
    seconds: float
    up: bool


@dataclass(frozen=True)
class Busiest:
    script: str
    requests: float
    errors: float


class History:
    def __init__(self, fields: tuple[str, ...]) -> None:
        self._requests = fields.index("requests")
        self._errors = fields.index("errors")
        self._points: dict[str, deque[Point]] = {}
        self.last_poll: dict[str, LastPoll] = {}

    def polled(self, account: str, at: datetime, seconds: float, up: bool) -> None:
        self.last_poll[account] = LastPoll(at, seconds, up)

    def point(self, settled: Range, rows: Mapping[SeriesKey, Vector]) -> Point | None:
        """What one poll made final, summed by script: one pass over the rows, safe off the event
        loop (it touches no state). None when the poll made no minute final."""
        if settled.empty:
            return None
        # Summed over every key dimension but the first (the script), exactly as the export does.
        summed = project(rows, (0,), (self._requests, self._errors))
        requests = {script: values[0] for (script,), values in summed.items()}
        errors = {script: values[1] for (script,), values in summed.items()}
        top = heapq.nlargest(TOP_PER_POINT, requests.items(), key=lambda item: (item[1], item[0]))
        scripts = {script: (count, errors[script]) for script, count in top}
        return Point(settled.start, settled.end, sum(requests.values()), sum(errors.values()), scripts)

    def add(self, account: str, point: Point) -> None:
        points = self._points.setdefault(account, deque(maxlen=MAX_POINTS))
        points.append(point)
        while points and points[0].end <= point.end - WINDOW:
            points.popleft()

    def record(self, account: str, settled: Range, rows: Mapping[SeriesKey, Vector]) -> float:
        """point() then add(); returns the requests made final (0 when none)."""
        point = self.point(settled, rows)
        if point is None:
            return 0.0
        self.add(account, point)
        return point.requests

    def points(self, account: str) -> tuple[Point, ...]:
        return tuple(self._points.get(account, ()))

    def busiest(self, account: str, n: int) -> list[Busiest]:
        """The n scripts with the most requests over the kept hour (from each point's busiest)."""
        sums: dict[str, tuple[float, float]] = {}
        for point in self._points.get(account, ()):
            for script, (requests, errors) in point.scripts.items():
                r, e = sums.get(script, (0.0, 0.0))
                sums[script] = (r + requests, e + errors)
        top = heapq.nlargest(n, sums.items(), key=lambda item: (item[1][0], item[0]))
        return [Busiest(script, r, e) for script, (r, e) in top]
