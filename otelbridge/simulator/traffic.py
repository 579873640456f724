"""Deterministic synthetic Workers traffic and its exact ground truth.

Events are generated per (account, minute) block from a seed, lazily, and kept in a bounded
LRU cache, so a benchmark with thousands of scripts only pays for the minutes it queries.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

from otelbridge.clock import Clock, SystemClock
from otelbridge.simulator import events as ev
from otelbridge.simulator.analytics import Analytics, arrived
from otelbridge.simulator.events import Event, Number, Seen
from otelbridge.simulator.knobs import Knobs
from otelbridge.simulator.world import Resources, default_resources, scaled_resources, zone

Profile = Literal["busy", "idle", "erroring", "bursty"]

COLOS = ("AMS", "FRA", "LHR", "CDG", "IAD", "SJC", "NRT", "SIN", "GRU", "SYD")  # exactly 10
# Share of invocations per non-success status: (clientDisconnected, threw, exceeded, internal).
_STATUS_MIX = {
    "normal": (0.01, 0.004, 0.002, 0.001),
    "erroring": (0.02, 0.25, 0.06, 0.02),
}
_U24 = (1 << 24) - 1  # integer metrics stay below 2**24 so float32 holds them exactly
_SLOWDOWN = {"exceededResources": 8.0, "scriptThrewException": 0.3}


def _lognormal_table(sigma: float) -> tuple[float, ...]:
    """exp(sigma * z) at 1024 evenly spaced quantiles of the standard normal (median 1)."""
    normal = NormalDist()
    return tuple(math.exp(sigma * normal.inv_cdf((i + 0.5) / 1024)) for i in range(1024))


_LOGN_07, _LOGN_08, _LOGN_10 = (_lognormal_table(s) for s in (0.7, 0.8, 1.0))


def _hex(*parts: object) -> str:
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


@dataclass(frozen=True)
class Script:
    name: str
    tag: str
    profile: Profile
    rate: float  # invocations per minute at the diurnal mean
    cpu_us: float = 1500.0  # median CPU time
    io_us: float = 20000.0  # median time waiting on I/O
    body_bytes: float = 8000.0  # median response size
    max_subrequests: int = 3
    usage_model: str = "standard"
    environment: str = "production"


@dataclass(frozen=True)
class Account:
    tag: str
    name: str
    scripts: tuple[Script, ...]
    zones: tuple[str, ...]


def minute_of(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass timezone-aware UTC times")
    return math.floor(when.timestamp() / 60)


class Traffic:
    """A deterministic world of accounts, scripts and their invocation events."""

    def __init__(
        self,
        seed: int,
        accounts: list[Account],
        *,
        cache_blocks: int = 20000,
        resources: dict[str, Resources] | None = None,
    ) -> None:
        self.seed = seed
        self.accounts = accounts
        # zones, buckets, databases, namespaces and the records of their datasets
        self.analytics = Analytics(self, resources or {a.tag: Resources() for a in accounts})
        self.knobs = Knobs()  # replaced by the simulator's knobs when it is attached
        self.clock: Clock = SystemClock()
        self._by_tag = {a.tag: i for i, a in enumerate(accounts)}
        self._cache: OrderedDict[tuple[int, int, bool], list[Event]] = OrderedDict()
        self._cache_blocks = cache_blocks
        # Zones taken off the account (deleted, moved): not listed, not in viewer.zones. Their
        # records, and every other zone's, stay as they were, so a zone can come back unchanged.
        self.hidden_zones: set[str] = set()

    def zones(self, account: Account) -> tuple[str, ...]:
        """The account's zones as the API lists them now."""
        return tuple(z for z in account.zones if z not in self.hidden_zones)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def default(cls, seed: int = 1) -> Traffic:
        """Three accounts, a handful of scripts each, every profile and status represented."""

        def script(acct: int, name: str, profile: Profile, rate: float, **kw: float) -> Script:
            return Script(name, _hex(seed, "script", acct, name), profile, rate, **kw)  # type: ignore[arg-type]

        specs: list[tuple[str, list[Script]]] = [
            (
                "Acme Corp",
                [
                    script(0, "api-gateway", "busy", 1200, cpu_us=900, io_us=35000),
                    script(0, "auth.service", "busy", 300, cpu_us=4000, io_us=8000, body_bytes=900),
                    script(0, "image-resizer", "bursty", 40, cpu_us=25000, io_us=60000, body_bytes=180000),
                    script(0, "cron-cleanup", "idle", 2),
                    script(0, "legacy-billing", "erroring", 60, cpu_us=6000),
                    script(0, "søk-indeks.v2-β", "busy", 150, cpu_us=2500, io_us=12000),
                ],
            ),
            (
                "Acme Staging",
                [
                    script(1, "api-gateway", "busy", 80, cpu_us=1000, io_us=30000),
                    script(1, "queue-consumer", "bursty", 20, cpu_us=8000, max_subrequests=12),
                    script(1, "nightly-report", "idle", 3, cpu_us=40000),
                ],
            ),
            (
                "Side Project Ltd",
                [
                    script(2, "blog-renderer", "busy", 200, cpu_us=3000, io_us=15000, body_bytes=40000),
                    script(2, "contact-form", "erroring", 10, cpu_us=1200),
                    script(2, "edge-redirects", "idle", 1, cpu_us=300, io_us=500, body_bytes=0),
                ],
            ),
        ]
        resources = {
            _hex(seed, "account", i): default_resources(seed, i, tuple(s.name for s in scripts))
            for i, (_, scripts) in enumerate(specs)
        }
        accounts = [
            Account(tag, name, tuple(scripts), tuple(z.tag for z in res.zones))
            for (tag, res), (name, scripts) in zip(resources.items(), specs, strict=True)
        ]
        return cls(seed, accounts, resources=resources)

    @classmethod
    def scaled(
        cls, seed: int, accounts: int = 10, scripts_per_account: int = 100, zones_per_account: int = 2
    ) -> Traffic:
        """Many accounts and scripts for benchmarks; profiles cycle busy/idle/erroring/bursty."""
        cycle: tuple[Profile, ...] = ("busy", "idle", "busy", "erroring", "idle", "bursty", "idle", "busy")
        rng = random.Random(seed)
        built = []
        resources = {}
        for a in range(accounts):
            scripts = []
            for s in range(scripts_per_account):
                profile = cycle[s % len(cycle)]
                name = f"worker-{a:03d}-{s:05d}"
                rate = {"busy": 30.0, "idle": 1.0, "erroring": 8.0, "bursty": 4.0}[profile]
                scripts.append(
                    Script(name, _hex(seed, "script", a, name), profile, rate * (0.5 + rng.random()))
                )
            res = resources[_hex(seed, "account", a)] = scaled_resources(seed, a, zones_per_account)
            zones = tuple(z.tag for z in res.zones)
            built.append(Account(_hex(seed, "account", a), f"Account {a:03d}", tuple(scripts), zones))
        return cls(seed, built, resources=resources)

    @classmethod
    def zoned(
        cls, seed: int, zones: int, plans: tuple[str, ...] = ("enterprise", "business", "pro", "free")
    ) -> Traffic:
        """One account with one Worker and `zones` zones (named zone-NNN.example), plans in turn."""
        tag = _hex(seed, "account", 0)
        script = Script("edge-router", _hex(seed, "script", 0, "edge-router"), "busy", 60)
        made = tuple(
            zone(seed, 0, i, f"zone-{i:03d}.example", plans[i % len(plans)], 30.0) for i in range(zones)
        )
        account = Account(tag, "Many Zones Inc", (script,), tuple(z.tag for z in made))
        return cls(seed, [account], resources={tag: Resources(zones=made)})

    def account(self, tag: str) -> Account | None:
        i = self._by_tag.get(tag)
        return None if i is None else self.accounts[i]

    # --- events -------------------------------------------------------------------------

    def block(self, account_tag: str, minute: int) -> list[Event]:
        """All events of one account in one epoch minute (whatever their visibility)."""
        index = self._by_tag[account_tag]
        key = (index, minute, self.knobs.decimal_floats)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        events = self._generate(index, minute, self.knobs.decimal_floats)
        self._cache[key] = events
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return events

    def _generate(self, account_index: int, minute: int, decimal: bool) -> list[Event]:
        rng = random.Random((self.seed << 48) ^ (account_index << 36) ^ minute)
        rand, bits64 = rng.random, rng.getrandbits
        # diurnal: x0.4 at 06:00 UTC ... x1.6 at 18:00 UTC
        diurnal = 1.0 - 0.6 * math.sin(2 * math.pi * (minute % 1440) / 1440)
        out: list[Event] = []
        for si, script in enumerate(self.accounts[account_index].scripts):
            lam = script.rate * diurnal * (0.8 + 0.4 * rand())
            if script.profile == "idle":
                lam = 1.0 + 2 * rand() if rand() < 0.05 else 0.0
            elif script.profile == "bursty" and _burst(self.seed, script.tag, minute // 10):
                lam *= 15
            if lam <= 0:
                continue
            mix = _STATUS_MIX["erroring" if script.profile == "erroring" else "normal"]
            version = _version(script.tag, minute // 4320)
            counts = (lam * (1 - sum(mix)), *(lam * share for share in mix))
            for status, expected in zip(ev.STATUSES, counts, strict=True):
                n = int(expected + rand())
                if n <= 0:
                    continue
                k = min(n, 1 + int(8 * rand()))
                weights = [n // k] * k
                weights[int(k * rand())] += n % k
                cpu_median = script.cpu_us * _SLOWDOWN.get(status, 1.0)
                io_median, body_median = script.io_us, script.body_bytes
                subrequest_choices = script.max_subrequests + 1
                stretch = 3 if status == "clientDisconnected" else 1
                for weight in weights:
                    # one draw of 64 random bits feeds most per-event values; lognormals come from tables
                    b = bits64(64)
                    cpu = min(_U24, 1 + int(cpu_median * _LOGN_07[b & 1023]))
                    wall = min(_U24, (cpu + int(io_median * _LOGN_10[(b >> 10) & 1023])) * stretch)
                    # 128 MB of memory for `wall` µs, in units of 2**-16 GB*s
                    duration = max(1, round(wall * 0.125 * 65536 / 1e6)) / 65536
                    # sixteenths of a µs, cut to 24 significant bits so float32 holds the value exactly
                    sixteenths = wall * 16 + ((b >> 48) & 0x7FFF)
                    if sixteenths >> 24:
                        cut = sixteenths.bit_length() - 24
                        sixteenths = sixteenths >> cut << cut
                    request_duration = sixteenths / 16
                    if decimal:  # 0.128 GB·s per wall second (128 MB); µs to three decimals
                        duration = float(Fraction(wall * 128, 10**9))
                        request_duration = float(Fraction(wall * 1000 + ((b >> 48) & 0x3FF) % 1000, 1000))
                    interval = 1 << max(0, weight.bit_length() - 4)
                    out.append(
                        Event(
                            si,
                            status,
                            minute,
                            ((b >> 30) & 63) % 60,
                            COLOS[((b >> 36) & 15) % 10],
                            version,
                            weight,
                            interval * int(weight / interval + rand()),
                            interval,
                            rand(),
                            cpu,
                            wall,
                            duration,
                            request_duration,
                            min(_U24, int(body_median * _LOGN_08[(b >> 20) & 1023])),
                            ((b >> 40) & 255) % subrequest_choices,
                        )
                    )
        return out

    def visible(self, account_tag: str, first_minute: int, end_minute: int, as_of_s: float) -> Iterator[Seen]:
        """Events of minutes [first_minute, end_minute) as a query at `as_of_s` sees them.

        A minute has data only once it has ended; with an ingestion delay its events arrive over
        the following `ingestion_delay` seconds. Under sampling an event counts with its sampled weight.
        """
        knobs = self.knobs
        return arrived(
            lambda m: self.block(account_tag, m),
            first_minute,
            end_minute,
            as_of_s,
            knobs.ingestion_delay,
            knobs.sampling,
        )

    # --- ground truth -------------------------------------------------------------------

    def _select(
        self,
        account_tag: str,
        start: datetime,
        end: datetime,
        as_of: datetime | None,
        script: str | None = None,
        status: str | None = None,
    ) -> list[Seen]:
        names = [s.name for s in self.accounts[self._by_tag[account_tag]].scripts]
        at = (as_of or self.clock.now()).timestamp()
        return [
            s
            for s in self.visible(account_tag, minute_of(start), minute_of(end), at)
            if (script is None or names[s[2].script] == script) and (status is None or s[2].status == status)
        ]

    def totals(
        self,
        account_tag: str,
        start: datetime,
        end: datetime,
        *,
        script: str | None = None,
        status: str | None = None,
        as_of: datetime | None = None,
    ) -> dict[str, Number]:
        """`sum { ... }` over minutes in [start, end) as visible at `as_of` (default: now)."""
        return ev.sums(
            self._select(account_tag, start, end, as_of, script, status), self.knobs.decimal_floats
        )

    def series_totals(
        self, account_tag: str, start: datetime, end: datetime, as_of: datetime | None = None
    ) -> dict[tuple[str, str], dict[str, Number]]:
        """`sum { ... }` per (scriptName, status), for the groups that have events."""
        exact = self.knobs.decimal_floats
        return {
            key: ev.sums(seen, exact) for key, seen in self._groups(account_tag, start, end, as_of).items()
        }

    def exact_series_totals(
        self, account_tag: str, start: datetime, end: datetime, as_of: datetime | None = None
    ) -> dict[tuple[str, str], dict[str, Fraction]]:
        """series_totals with the float fields as exact rationals: what no float sum can be."""
        return {
            key: ev.exact_float_sums(seen)
            for key, seen in self._groups(account_tag, start, end, as_of).items()
        }

    def _groups(
        self, account_tag: str, start: datetime, end: datetime, as_of: datetime | None
    ) -> dict[tuple[str, str], list[Seen]]:
        names = [s.name for s in self.accounts[self._by_tag[account_tag]].scripts]
        groups: dict[tuple[str, str], list[Seen]] = {}
        for s in self._select(account_tag, start, end, as_of):
            groups.setdefault((names[s[2].script], s[2].status), []).append(s)
        return dict(sorted(groups.items()))

    def quantiles(
        self, account_tag: str, script: str, start: datetime, end: datetime, as_of: datetime | None = None
    ) -> dict[str, float]:
        """`quantiles { ... }` of a group by scriptName over [start, end); {} if it has no events."""
        seen = self._select(account_tag, start, end, as_of, script)
        return ev.quantiles(seen) if seen else {}

    def sample_interval(
        self, account_tag: str, script: str, start: datetime, end: datetime, as_of: datetime | None = None
    ) -> float:
        """`avg { sampleInterval }` of a group by scriptName over [start, end)."""
        return ev.sample_interval(self._select(account_tag, start, end, as_of, script))


def _burst(seed: int, tag: str, window: int) -> bool:
    return int(_hex(seed, tag, window)[:2], 16) < 64  # a quarter of the 10-minute windows


@lru_cache(maxsize=1 << 16)
def _version(tag: str, epoch: int) -> str:
    """A new deployment of each script every three days."""
    h = _hex(tag, "version", epoch)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc(text: str) -> datetime:
    """Parse RFC 3339 (`Z` or offset) to an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
