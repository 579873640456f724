"""Cumulative totals of one dataset for one scope (an account or a zone), built from the answers to
windows.plan(). Pure logic.

Totals are kept in the API's own units (µs, GB·s, bytes) so integer sums stay exact; unit
conversion happens once, when a snapshot is made. Fields the schema types as float64 (`floats`)
are held exactly too, as integer counts of 2**-1074 (see exact.py), and rounded once on export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from otelbridge import exact
from otelbridge.windows import MINUTE, Plan

SeriesKey = tuple[str, ...]  # the values of the dataset's counter_key dimensions, in order
Vector = tuple[float, ...]  # one value per counter field, in catalogue order (float fields: units)
Rows = Mapping[SeriesKey, Vector]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ROUNDING_SPAN = 1 << 52  # float fields: drops within 1/_ROUNDING_SPAN of the value are rounding


def _add(a: Vector, b: Vector) -> Vector:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _below(a: Vector, b: Vector) -> bool:
    """True when some field of a is lower than in b."""
    return any(x < y for x, y in zip(a, b, strict=True))


def _accumulate(into: dict[SeriesKey, Vector], rows: Rows) -> None:
    for key, vector in rows.items():
        into[key] = _add(into[key], vector) if key in into else vector


@dataclass
class Ledger:
    """What has been counted of one dataset for one scope.

    final   sums of settled minutes, never re-queried
    open    the last answer for the open minutes [settled, counted), replaced every cycle
    totals  what is exported: final + open, but never lower than before (counters do not go down)
    seen    per series, the watermark (`counted`) of the last answer that had rows for it

    A re-queried answer below what was exported is a downward revision (for a float field: by more
    than Cloudflare's rounding of rows explains): it is counted once in
    `corrections`, and the series stays clamped (exported above final + open) until its fresh
    value catches up. A clamped series' later answers count again only if they come back lower
    still. `clamped` is derived (final + open of the clamped series), so state files need not hold it.

    With `idle_ttl`, a series with no rows in any answer for that long (by the watermark, so
    nothing of it is open) is forgotten: it leaves the export and the ledger. If it has data
    again, its counter starts again from zero with the new minutes only (a counter reset), so no
    minute is ever counted twice.
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
    floats: frozenset[str] = frozenset()  # float64 fields, held exactly in units of 2**-1074
    seen: dict[SeriesKey, datetime] = field(default_factory=dict)
    idle_ttl: timedelta | None = field(default=None, compare=False)  # configuration, not state
    forgotten: int = field(default=0, compare=False)  # idle series forgotten since start

    @classmethod
    def starting_at(cls, fields: tuple[str, ...], start: datetime, floats: Iterable[str] = ()) -> Ledger:
        ledger = cls(fields=fields, settled=start, counted=start)
        ledger.count_exactly(floats)
        return ledger

    @property
    def float_index(self) -> tuple[int, ...]:
        return tuple(i for i, name in enumerate(self.fields) if name in self.floats)

    def count_exactly(self, floats: Iterable[str]) -> None:
        """Hold these float fields exactly from now on; values counted before are taken as they are."""
        wanted = frozenset(floats)
        if not wanted <= set(self.fields):
            raise ValueError(f"unknown float fields {sorted(wanted - set(self.fields))}")
        added = tuple(i for i, name in enumerate(self.fields) if name in wanted - self.floats)
        removed = tuple(i for i, name in enumerate(self.fields) if name in self.floats - wanted)
        if not added and not removed:
            return

        def convert(vector: Vector) -> Vector:
            out = list(vector)
            for i in added:
                out[i] = exact.units(out[i])
            for i in removed:
                out[i] = exact.quotient(int(out[i]))
            return tuple(out)

        for rows in (self.final, self.open, self.totals, self.clamped):
            rows.update({key: convert(vector) for key, vector in rows.items()})
        self.floats = wanted

    def _exact(self, rows: Rows) -> Rows:
        """An answer's rows with float fields in units; integer fields pass through unchanged."""
        index = self.float_index
        if not index:
            return rows
        out = {}
        for key, vector in rows.items():
            values = list(vector)
            for i in index:
                values[i] = exact.units(values[i])
            out[key] = tuple(values)
        return out

    def apply(self, plan: Plan, settling: Rows, open_rows: Rows) -> None:
        """Take one cycle's answer. `settling` covers plan.settling, `open_rows` covers plan.open."""
        if plan.settling.start != self.settled and not plan.abandon_open and plan.skipped.empty:
            raise ValueError(f"plan starts at {plan.settling.start}, ledger is settled to {self.settled}")
        settling, open_rows = self._exact(settling), self._exact(open_rows)
        if plan.abandon_open:
            _accumulate(self.final, self.open)
        self.gap_minutes += plan.skipped.minutes
        _accumulate(self.final, settling)
        changed = self.open.keys() | settling.keys() | open_rows.keys()
        self.open = dict(open_rows)
        self.settled, self.counted = plan.settled, plan.counted
        self.seen.update(dict.fromkeys(settling, self.counted))
        self.seen.update(dict.fromkeys(open_rows, self.counted))
        self._refresh_totals(changed)
        self._forget_idle()

    def _fresh(self, key: SeriesKey) -> Vector:
        """final + open of a series (zero if an open row it had is no longer answered)."""
        final, open_part = self.final.get(key), self.open.get(key)
        if final is None or open_part is None:
            return final or open_part or (0,) * len(self.fields)
        return _add(final, open_part)

    def _refresh_totals(self, keys: Iterable[SeriesKey]) -> None:
        """Recompute the totals of the series whose final or open part changed; others stand."""
        for key in keys:
            fresh = self._fresh(key)
            before = self.totals.get(key)
            if before is None or not _below(fresh, before):
                self.clamped.pop(key, None)
                self.totals[key] = fresh
                continue
            last = self.clamped.get(key)
            if self._revised(fresh, before if last is None else last):  # not the same one again
                self.corrections += 1
            self.clamped[key] = fresh
            self.totals[key] = tuple(max(f, b) for f, b in zip(fresh, before, strict=True))

    def _revised(self, fresh: Vector, reference: Vector) -> bool:
        """Whether fresh is a downward revision of reference. Cloudflare rounds each float row it
        returns (2**-53 relative), so the same minutes answered as other rows may sum up to 2**-52
        lower (see docs/numbers.md): a float field must drop by more to count as revised."""
        floats = self.float_index
        for i, (f, r) in enumerate(zip(fresh, reference, strict=True)):
            if f < r and (i not in floats or f * _ROUNDING_SPAN < r * (_ROUNDING_SPAN - 1)):
                return True
        return False

    def _forget_idle(self) -> None:
        if self.idle_ttl is None:
            return
        horizon = self.counted - self.idle_ttl
        idle = [key for key, seen in self.seen.items() if seen <= horizon and key not in self.open]
        for key in idle:
            for rows in (self.final, self.totals, self.clamped, self.seen):
                rows.pop(key, None)
        self.forgotten += len(idle)

    # State files hold plain JSON types: datetimes as ISO strings, vectors as lists, exact float
    # sums as fraction strings ("n/d"), last-seen watermarks as epoch minutes.
    def to_json(self) -> dict[str, Any]:
        index = self.float_index

        def plain(vector: Vector) -> list[Any]:
            out: list[Any] = list(vector)
            for i in index:
                out[i] = exact.encode(int(out[i]))
            return out

        def rows(d: dict[SeriesKey, Vector]) -> list[list[Any]]:
            return [[*key, plain(vector)] for key, vector in sorted(d.items())]

        minutes = {when: (when - _EPOCH) // MINUTE for when in set(self.seen.values())}

        return {
            "fields": list(self.fields),
            "floats": sorted(self.floats),
            "settled": self.settled.isoformat(),
            "counted": self.counted.isoformat(),
            "final": rows(self.final),
            "open": rows(self.open),
            "totals": rows(self.totals),
            "seen": [[*key, minutes[when]] for key, when in sorted(self.seen.items())],
            "corrections": self.corrections,
            "gap_minutes": self.gap_minutes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], fields: tuple[str, ...], width: int | None = None) -> Ledger:
        """A saved ledger whose series keys have `width` dimensions (None: any one width). Files
        written before float fields were exact hold plain numbers and no `floats`; they load as they
        are, and count_exactly() converts them."""
        widths: set[int] = set() if width is None else {width}
        if tuple(data["fields"]) != fields:
            raise ValueError(f"state has fields {data['fields']}, this version counts {list(fields)}")
        floats = frozenset(data.get("floats", ()))
        if not floats <= set(fields):
            raise ValueError(f"state has unknown float fields {sorted(floats - set(fields))}")
        index = tuple(i for i, name in enumerate(fields) if name in floats)

        def vector_of(values: list[Any], where: str) -> Vector:
            numbers = list(values)
            for i in index:
                if not isinstance(numbers[i], str):
                    raise ValueError(f"malformed exact sum in ledger row for {where}")
                numbers[i] = exact.decode(numbers[i])
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
                raise ValueError(f"non-numeric value in ledger row for {where}")
            return tuple(numbers)

        def rows(items: list[list[Any]]) -> dict[SeriesKey, Vector]:
            out: dict[SeriesKey, Vector] = {}
            for item in items:
                key, values = tuple(item[:-1]), item[-1]
                widths.add(len(key))
                if len(widths) > 1 or not all(isinstance(k, str) for k in key) or len(values) != len(fields):
                    raise ValueError(f"malformed ledger row for {key!r}")
                out[key] = vector_of(values, repr(key))
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
            floats=floats,
        )
        if ledger.settled > ledger.counted:
            raise ValueError("state has settled after counted")
        # Older files have no `seen`: their series count as seen now, so none is forgotten early.
        ledger.seen = {key: ledger.counted for key in ledger.totals}
        for *key, minute in data.get("seen", ()):
            if tuple(key) in ledger.seen:
                ledger.seen[tuple(key)] = _EPOCH + MINUTE * int(minute)
        for key, exported in ledger.totals.items():
            fresh = ledger._fresh(key)
            if _below(fresh, exported):
                ledger.clamped[key] = fresh
        return ledger
