"""Cumulative totals of one account, built from the answers to windows.plan(). Pure logic.

Totals are kept in the API's own units (µs, GB·s, bytes) so integer sums stay exact; unit
conversion happens once, when a snapshot is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from otelbridge.windows import Plan

SeriesKey = tuple[str, str]  # (script name, status)
Vector = tuple[float, ...]  # one value per counter field, in catalogue order
Rows = Mapping[SeriesKey, Vector]


def _add(a: Vector, b: Vector) -> Vector:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _below(a: Vector, b: Vector) -> bool:
    """True when some field of a is lower than in b."""
    return any(x < y for x, y in zip(a, b, strict=True))


def _accumulate(into: dict[SeriesKey, Vector], rows: Rows) -> None:
    for key, vector in rows.items():
        into[key] = _add(into[key], vector) if key in into else vector


@dataclass
class AccountLedger:
    """What has been counted for one account.

    final   sums of settled minutes, never re-queried
    open    the last answer for the open minutes [settled, counted), replaced every cycle
    totals  what is exported: final + open, but never lower than before (counters do not go down)

    A re-queried answer below what was exported is a downward revision: it is counted once in
    `corrections`, and the series stays clamped (exported above final + open) until its fresh
    value catches up. A clamped series' later answers count again only if they come back lower
    still. `clamped` is derived (final + open of the clamped series), so state files need not hold it.
    """

    fields: tuple[str, ...]
    settled: datetime
    counted: datetime
    final: dict[SeriesKey, Vector] = field(default_factory=dict)
    open: dict[SeriesKey, Vector] = field(default_factory=dict)
    totals: dict[SeriesKey, Vector] = field(default_factory=dict)
    corrections: int = 0  # downward revisions: re-queried values lower than exported and than before
    gap_minutes: int = 0  # minutes Cloudflare no longer served when their turn came
    clamped: dict[SeriesKey, Vector] = field(default_factory=dict)  # fresh value of series below totals

    @classmethod
    def starting_at(cls, fields: tuple[str, ...], start: datetime) -> AccountLedger:
        return cls(fields=fields, settled=start, counted=start)

    def apply(self, plan: Plan, settling: Rows, open_rows: Rows) -> None:
        """Take one cycle's answer. `settling` covers plan.settling, `open_rows` covers plan.open."""
        if plan.settling.start != self.settled and not plan.abandon_open and plan.skipped.empty:
            raise ValueError(f"plan starts at {plan.settling.start}, ledger is settled to {self.settled}")
        if plan.abandon_open:
            _accumulate(self.final, self.open)
        self.gap_minutes += plan.skipped.minutes
        _accumulate(self.final, settling)
        self.open = dict(open_rows)
        self.settled, self.counted = plan.settled, plan.counted
        self._refresh_totals()

    def _fresh(self, key: SeriesKey) -> Vector:
        zero = (0,) * len(self.fields)
        return _add(self.final.get(key, zero), self.open.get(key, zero))

    def _refresh_totals(self) -> None:
        for key in self.final.keys() | self.open.keys():
            fresh = self._fresh(key)
            before = self.totals.get(key)
            if before is None or not _below(fresh, before):
                self.clamped.pop(key, None)
                self.totals[key] = fresh
                continue
            last = self.clamped.get(key)
            if last is None or _below(fresh, last):  # a new downward revision, not the same one again
                self.corrections += 1
            self.clamped[key] = fresh
            self.totals[key] = tuple(max(f, b) for f, b in zip(fresh, before, strict=True))

    # State files hold plain JSON types: datetimes as ISO strings, vectors as lists.
    def to_json(self) -> dict[str, Any]:
        def rows(d: dict[SeriesKey, Vector]) -> list[list[Any]]:
            return [[script, status, list(vector)] for (script, status), vector in sorted(d.items())]

        return {
            "fields": list(self.fields),
            "settled": self.settled.isoformat(),
            "counted": self.counted.isoformat(),
            "final": rows(self.final),
            "open": rows(self.open),
            "totals": rows(self.totals),
            "corrections": self.corrections,
            "gap_minutes": self.gap_minutes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], fields: tuple[str, ...]) -> AccountLedger:
        if tuple(data["fields"]) != fields:
            raise ValueError(f"state has fields {data['fields']}, this version counts {list(fields)}")

        def rows(items: list[list[Any]]) -> dict[SeriesKey, Vector]:
            out: dict[SeriesKey, Vector] = {}
            for script, status, vector in items:
                if not isinstance(script, str) or not isinstance(status, str) or len(vector) != len(fields):
                    raise ValueError(f"malformed ledger row for {script!r}/{status!r}")
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vector):
                    raise ValueError(f"non-numeric value in ledger row for {script!r}/{status!r}")
                out[(script, status)] = tuple(vector)
            return out

        ledger = cls(
            fields=fields,
            settled=datetime.fromisoformat(data["settled"]),
            counted=datetime.fromisoformat(data["counted"]),
            final=rows(data["final"]),
            open=rows(data["open"]),
            totals=rows(data["totals"]),
            corrections=int(data["corrections"]),
            gap_minutes=int(data["gap_minutes"]),
        )
        if ledger.settled > ledger.counted:
            raise ValueError("state has settled after counted")
        for key in ledger.final.keys() | ledger.open.keys():
            fresh, exported = ledger._fresh(key), ledger.totals.get(key)
            if exported is not None and _below(fresh, exported):
                ledger.clamped[key] = fresh
        return ledger
