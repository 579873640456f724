"""Records of the zone and developer-platform datasets per (scope, minute), what a query at a
given time sees of them, their aggregates, and the ground truth tests compare answers with."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from otelbridge.clock import Clock
from otelbridge.simulator.datasets import SPECS, DatasetSpec, Record
from otelbridge.simulator.knobs import Knobs
from otelbridge.simulator.world import Resources, Zone, hex_id

# (weight, interval, record): a record as one query sees it, after visibility and sampling
Seen = tuple[int, int, Record]
Number = int | float


class Arriving(Protocol):
    """An event or record: what late arrival and sampling look at."""

    @property
    def weight(self) -> int: ...
    @property
    def sampled_weight(self) -> int: ...
    @property
    def interval(self) -> int: ...
    @property
    def lag(self) -> float: ...


A = TypeVar("A", bound=Arriving)


def arrived(
    block: Callable[[int], list[A]],
    first_minute: int,
    end_minute: int,
    as_of_s: float,
    delay: float,
    sampling: bool,
) -> Iterator[tuple[int, int, A]]:
    """(weight, interval, item) of each item of minutes [first_minute, end_minute) that a query
    at `as_of_s` sees. A minute has data only once it has ended; with an ingestion delay its
    items arrive over the following `delay` seconds. Under sampling an item counts with its estimate."""
    for minute in range(first_minute, min(end_minute, math.floor(as_of_s / 60))):
        items = block(minute)
        end = (minute + 1) * 60
        if end + delay > as_of_s:  # still arriving: keep what has arrived
            items = [i for i in items if end + i.lag * delay <= as_of_s]
        if sampling:
            yield from ((i.sampled_weight, i.interval, i) for i in items if i.sampled_weight)
        else:
            yield from ((i.weight, 1, i) for i in items)


class Owner(Protocol):
    """What the analytics read from the Traffic that owns them (the simulator swaps knobs/clock)."""

    seed: int
    knobs: Knobs
    clock: Clock


def _minute(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass timezone-aware UTC times")
    return math.floor(when.timestamp() / 60)


def aggregate(spec: DatasetSpec, seen: Sequence[Seen]) -> dict[str, Any]:
    """Every aggregate of one group, keyed like the GraphQL row: count, sum{}, max{}, avg{}."""
    out: dict[str, Any] = {}
    if spec.count:
        out["count"] = sum(w for w, _, _ in seen)
    if spec.sums:
        sums: dict[str, Number] = {}
        for name, value in spec.sums:
            if value == "":
                total = sum(w for w, _, _ in seen)
            else:
                i = spec.index(value)
                total = sum(w * r.values[i] for w, _, r in seen)
            scale = spec.float_sums.get(name)
            sums[name] = total if scale is None else total / scale  # exact: scale is a power of two
        out["sum"] = sums
    if spec.maxes:
        out["max"] = {name: max(r.values[spec.index(name)] for _, _, r in seen) for name in spec.maxes}
    weight = sum(w for w, _, _ in seen)
    averages: dict[str, Number] = {  # integer fields: the weighted mean rounded down
        name: sum(w * r.values[spec.index(name)] for w, _, r in seen) // weight for name in spec.averages
    }
    if spec.sample_interval:
        rows = sum(w // interval for w, interval, _ in seen)
        averages["sampleInterval"] = weight / rows if rows else 1.0
    if averages:
        out["avg"] = averages
    return out


class Analytics:
    """Deterministic records of every non-Workers dataset, generated lazily and cached."""

    def __init__(self, owner: Owner, resources: dict[str, Resources], *, cache_blocks: int = 20000) -> None:
        self.owner = owner
        self.resources = resources
        self._zones: dict[str, tuple[str, int]] = {
            z.tag: (account, i) for account, res in resources.items() for i, z in enumerate(res.zones)
        }
        self._index = {tag: i for i, tag in enumerate(resources)}
        self._cache: OrderedDict[tuple[str, str, int], list[Record]] = OrderedDict()
        self._cache_blocks = cache_blocks

    def zone(self, tag: str) -> tuple[str, Zone] | None:
        """(account tag, zone) of a zone tag, or None."""
        found = self._zones.get(tag)
        if found is None:
            return None
        account, i = found
        return account, self.resources[account].zones[i]

    def block(self, dataset: str, scope: str, minute: int) -> list[Record]:
        """All records of one account (account datasets) or zone (zone datasets) in one minute."""
        key = (dataset, scope, minute)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        records = self._generate(SPECS[dataset], scope, minute)
        self._cache[key] = records
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return records

    def _generate(self, spec: DatasetSpec, scope: str, minute: int) -> list[Record]:
        if spec.scope == "zone":
            account, index = self._zones[scope]
        else:
            account, index = scope, 0
        salt = int(hex_id(spec.name)[:6], 16) + index
        rng = random.Random((self.owner.seed << 48) ^ (self._index[account] << 36) ^ (salt << 24) ^ minute)
        diurnal = 1.0 - 0.6 * math.sin(2 * math.pi * (minute % 1440) / 1440)
        assert spec.generate is not None
        out = []
        for second, dims, weight, values in spec.generate(
            rng, self.resources[account], index, minute, diurnal
        ):
            interval = 1 if spec.level else 1 << max(0, weight.bit_length() - 4)
            sampled = interval * int(weight / interval + rng.random())
            out.append(Record(minute, second, dims, weight, sampled, interval, rng.random(), values))
        return out

    def visible(
        self, dataset: str, scope: str, first_minute: int, end_minute: int, as_of_s: float
    ) -> Iterator[Seen]:
        """Records of minutes [first_minute, end_minute) as a query at `as_of_s` sees them: late
        data arrives over `ingestion_delay` seconds after its minute ends; sampling (not for
        levels) replaces each weight with its estimate."""
        knobs = self.owner.knobs
        sampling = knobs.sampling and not SPECS[dataset].level
        return arrived(
            lambda m: self.block(dataset, scope, m),
            first_minute,
            end_minute,
            as_of_s,
            knobs.ingestion_delay,
            sampling,
        )

    # --- ground truth -------------------------------------------------------------------

    def totals(
        self,
        dataset: str,
        scope: str,
        start: datetime,
        end: datetime,
        by: Iterable[str] = (),
        as_of: datetime | None = None,
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Aggregates per group of the non-time dimensions `by` over the minutes in [start, end),
        as visible at `as_of` (default: now); keys are the groups' dimension values in `by` order."""
        spec = SPECS[dataset]
        positions = [spec.dimensions.index(d) for d in by]
        at = (as_of or self.owner.clock.now()).timestamp()
        groups: dict[tuple[Any, ...], list[Seen]] = {}
        for seen in self.visible(dataset, scope, _minute(start), _minute(end), at):
            groups.setdefault(tuple(seen[2].dims[p] for p in positions), []).append(seen)
        return {key: aggregate(spec, group) for key, group in sorted(groups.items())}

    def latest_levels(
        self, dataset: str, account: str, as_of: datetime | None = None, lookback_minutes: int = 60
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """The newest visible snapshot of a level dataset per resource (all its dimensions)."""
        spec = SPECS[dataset]
        at = (as_of or self.owner.clock.now()).timestamp()
        last = math.floor(at / 60)
        latest: dict[tuple[Any, ...], dict[str, int]] = {}
        for _, _, record in self.visible(dataset, account, last - lookback_minutes, last, at):
            latest[record.dims] = dict(zip(spec.values, record.values, strict=True))
        return dict(sorted(latest.items()))
