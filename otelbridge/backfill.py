"""Importing Cloudflare's history (`otelbridge backfill`): the settled minutes of the last month,
counted exactly by the same ledgers the live bridge keeps, as timestamped samples.

The history is read per UTC day (a span), per account (then each of its zones) and dataset, with
sums grouped by a time bucket (see otelbridge/cloudflare/buckets.py) and applied to the ledger
bucket by bucket; at every step (1m, 5m or 1h) the exported counters are sampled, exactly as the
live snapshot would export them. Quantile and average gauges are Cloudflare's own values per
quantile window, stamped at the window's end. A span's samples go to the sinks (OpenMetrics files,
OTLP), then the progress file records the ledgers at the span's end, so an interrupted run resumes
at the next span and writes the same samples. At the end the ledgers, settled to where the backfill
ends, become the live bridge's state file: live counting continues from the backfilled totals, with
no gap and no minute counted twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from otelbridge import snapshot, zones
from otelbridge.catalogue import ACCOUNT, ZONE, Catalogue, Dataset
from otelbridge.clock import Clock
from otelbridge.cloudflare import errors
from otelbridge.cloudflare.answers import SeriesKey
from otelbridge.cloudflare.buckets import BucketClient, BucketQuery, Page, bucket_dimensions, widest_bucket
from otelbridge.cloudflare.client import DatasetLimits
from otelbridge.cloudflare.queries import Shape
from otelbridge.config import Config
from otelbridge.ledger import Ledger
from otelbridge.ratelimit import RateBudget
from otelbridge.samples import Attributes, Instrument, Span
from otelbridge.state import StateStore, write_atomically
from otelbridge.windows import MINUTE, Plan, Range, floor_minute

log = logging.getLogger(__name__)

STEPS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "1h": timedelta(hours=1)}
DAY = timedelta(days=1)
PROGRESS_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFF = DatasetLimits(enabled=False)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class BackfillError(Exception):
    """A backfill that cannot start or go on; the message says what to do."""


class Sink(Protocol):
    def write(self, span: Span) -> None: ...


@dataclass(frozen=True)
class Options:
    start: datetime | None = None  # None: the oldest minute Cloudflare keeps
    end: datetime | None = None  # None: the newest settled minute, where live counting starts
    step: timedelta = STEPS["1m"]
    handover: bool = True  # write the ledgers as the live bridge's state file at the end
    rate_limit: int | None = None  # queries per 5 minutes for the backfill (default: shared_budget)
    attempts: int = 5  # per request, for transient failures


@dataclass
class Progress:
    """What a run has done; saved after every span."""

    start: datetime
    end: datetime
    step: timedelta
    accounts: tuple[str, ...]
    done: datetime  # spans before this are written
    ledgers: dict[str, dict[str, Ledger]]  # by account, then dataset
    requests: dict[str, int] = field(default_factory=dict)  # by account (its zones' included)
    handed_over: bool = False  # the ledgers are in the live state file: nothing left to do
    zones: dict[str, tuple[str, str]] = field(default_factory=dict)  # tag -> (name, account)
    zone_ledgers: dict[str, dict[str, Ledger]] = field(default_factory=dict)  # by zone, then dataset

    def to_json(self, api_url: str, datasets: Sequence[str]) -> dict[str, Any]:
        return {
            "format": PROGRESS_FORMAT,
            "api_url": api_url,
            "datasets": list(datasets),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "step": int(self.step.total_seconds()),
            "accounts": list(self.accounts),
            "done": self.done.isoformat(),
            "requests": self.requests,
            "handed_over": self.handed_over,
            "ledgers": _ledgers_json(self.ledgers),
            "zones": {tag: {"name": name, "account": account} for tag, (name, account) in self.zones.items()},
            "zone_ledgers": _ledgers_json(self.zone_ledgers),
        }


def _ledgers_json(ledgers: Mapping[str, Mapping[str, Ledger]]) -> dict[str, Any]:
    return {tag: {d: ledger.to_json() for d, ledger in by.items()} for tag, by in ledgers.items()}


@dataclass(frozen=True)
class _Scope:
    """An account, or one of its zones, as the backfill reads it."""

    tag: str
    account: str  # whose requests these are (a zone's owner)
    attributes: Mapping[str, str]  # on every series: its tag (a zone's also its name and account)
    datasets: tuple[Dataset, ...]
    limits: Mapping[str, DatasetLimits]
    ledgers: dict[str, Ledger]


def shared_budget(rate_limit: int) -> int:
    """The backfill's default share of the credential's budget: four fifths, leaving the rest to a
    bridge polling on the same credential (60 queries per 5 minutes: 12 accounts at 60 s polls)."""
    return max(1, rate_limit * 4 // 5)


def _ceil(moment: datetime, step: timedelta) -> datetime:
    offset = (moment - _EPOCH) % step
    return moment if not offset else moment + (step - offset)


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - _EPOCH) % step


def _epoch(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


def instruments(dataset: Dataset) -> dict[str, Instrument]:
    out = {c.name: Instrument(c.name, c.unit, c.description, "counter") for _, c in dataset.exported_counters}
    for q in dataset.quantile_gauges:
        out[q.name] = Instrument(q.name, q.unit, q.description, "gauge")
    for a in dataset.average_gauges:
        out[a.name] = Instrument(a.name, a.unit, a.description, "gauge")
    return out


class Backfill:
    def __init__(
        self,
        config: Config,
        options: Options,
        sinks: Sequence[Sink],
        progress_path: Path,
        clock: Clock,
        *,
        catalogue: Catalogue | None = None,
        sleep: Sleep = asyncio.sleep,
        report: Callable[[Backfill], None] | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.sinks = sinks
        self.progress_path = progress_path
        self.clock = clock
        self.catalogue = config.catalogue(catalogue)
        self.quantiles = config.quantile_set
        # Account-scope datasets are read per account, zone-scope ones per zone of the `zones` setting.
        self.datasets = self.catalogue.enabled
        self.account_datasets = tuple(d for d in self.datasets if d.scope == "account")
        self.zone_datasets = tuple(d for d in self.datasets if d.scope == "zone")
        self.budget = RateBudget(options.rate_limit or shared_budget(config.rate_limit), clock)
        self._sleep = sleep
        self._report = report
        self.progress: Progress | None = None
        self.spans_total = 0
        self.spans_done = 0  # of every account
        self.accounts_done = 0  # of the span under way
        self.requests = 0  # spent by this run
        self.fraction_at_start = 0.0  # done by earlier runs (resumed)
        self.started = time.monotonic()
        self._client: BucketClient | None = None
        self._sum_buckets: dict[str, tuple[timedelta, str]] = {}  # by dataset: width, dimension
        self._gauge_buckets: dict[str, str] = {}  # by dataset: the quantile window's dimension
        self._instruments = {n: i for d in self.datasets for n, i in instruments(d).items()}

    # --- the whole run -----------------------------------------------------------------

    async def run(self) -> Progress | None:
        """The finished backfill's progress (None when an earlier run finished it already)."""
        if self._finished():
            log.info("%s: this backfill is finished and handed over to live counting", self.progress_path)
            return None
        store = self._store()
        if store is not None:
            self._check_handover(store)
        client = BucketClient(
            self.config.api_url,
            self.config.credentials,
            self.quantiles,
            timeout=self.config.request_timeout.total_seconds(),
            account_based_rate_limit=self.config.account_based_rate_limit,
        )
        async with client:
            self._client = client
            self._choose_buckets(client)
            accounts = self.config.accounts or tuple(a.id for a in await self._call(client.accounts))
            listed = await self._list_zones(client, accounts)
            if store is not None:
                self._check_handover(store, set(listed))
            limits = {a: await self._settings(client, a) for a in accounts}
            limits.update(await self._zone_settings(client, listed))
            progress = self._resume_or_start(accounts, limits, listed)
            self.progress = progress
            scopes = self._scopes(progress, limits)
            spans = self._spans(progress.start, progress.end)
            self.spans_total = len(spans)
            self.spans_done = sum(1 for s, _ in spans if s < progress.done)
            self.fraction_at_start = self.fraction
            for start, end in spans:
                if start < progress.done:
                    continue
                span = Span(start, end, end == progress.end, self._instruments, origin=progress.start)
                for i, account in enumerate(accounts):
                    self.accounts_done = i
                    for scope in scopes[account]:
                        for dataset in scope.datasets:
                            await self._dataset_span(scope, dataset, span)
                for sink in self.sinks:
                    await asyncio.to_thread(sink.write, span)
                progress.done = end
                self._save(progress)
                self.spans_done += 1
                self.accounts_done = 0
                self._progressed()
        if store is not None:
            self._handover(store, progress)
            progress.handed_over = True
            self._save(progress)
        return progress

    def _finished(self) -> bool:
        try:
            return bool(json.loads(self.progress_path.read_text(encoding="utf-8")).get("handed_over"))
        except (OSError, ValueError, AttributeError):
            return False  # none yet, or unusable: _load says which

    def _choose_buckets(self, client: BucketClient) -> None:
        """Each dataset's bucket for the sums (refusing a step none divides) and for the gauges."""
        step, window = self.options.step, self.config.quantile_window
        for d in self.datasets:
            available = bucket_dimensions(client.schema, d)
            chosen = widest_bucket(available, step)
            if chosen is None:
                raise BackfillError(f"--step: {d.dataset} has no time bucket dividing {step}")
            self._sum_buckets[d.dataset] = chosen
            if (d.quantile_gauges or d.average_gauges) and window in available:
                self._gauge_buckets[d.dataset] = available[window]
            elif d.quantile_gauges or d.average_gauges:
                log.warning(
                    "%s: Cloudflare has no time bucket of the quantile window %s; its gauges are not "
                    "backfilled (1m, 5m, 15m and 1h are)",
                    d.dataset,
                    window,
                )

    def _progressed(self) -> None:
        if self._report is not None:
            self._report(self)

    @property
    def fraction(self) -> float:
        """How much of this run's work is done (0 to 1), by spans and accounts."""
        if self.progress is None or not self.spans_total:
            return 0.0
        accounts = max(1, len(self.progress.accounts))
        return min(1.0, (self.spans_done + self.accounts_done / accounts) / self.spans_total)

    async def _settings(self, client: BucketClient, account: str) -> dict[str, DatasetLimits]:
        if not self.account_datasets:
            return {}
        return await self._call(lambda: client.settings(account, self.account_datasets))

    async def _list_zones(self, client: BucketClient, accounts: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The accounts' zones the `zones` setting wants, as the live bridge lists them: tag ->
        (name, account); none without zone datasets."""
        if not self.zone_datasets:
            return {}
        out: dict[str, tuple[str, str]] = {}
        for account in accounts:
            found = await self._call(partial(client.zones, account))
            chosen = zones.wanted(found, self.config.zones)
            log.info("account %s: %d zone(s) backfilled of %d listed", account, len(chosen), len(found))
            out.update({tag: (z.name, account) for tag, z in sorted(chosen.items())})
        return out

    async def _zone_settings(
        self, client: BucketClient, listed: Mapping[str, tuple[str, str]]
    ) -> dict[str, dict[str, DatasetLimits]]:
        """What each zone's plan offers, 10 zones a request; a dataset a plan lacks is skipped with
        one log line, a zone the credential cannot see in GraphQL with one error."""
        out: dict[str, dict[str, DatasetLimits]] = {}
        for group in zones.in_groups(list(listed)):
            read = await self._call(partial(client.zone_settings, tuple(group), self.zone_datasets))
            for tag in group:
                label = f"zone {listed[tag][0]} ({tag})"
                if tag not in read:
                    log.error("%s: not visible to this credential; not backfilled", label)
                    out[tag] = {}
                    continue
                out[tag] = read[tag]
                lacks = [name for name, lim in read[tag].items() if not lim.enabled]
                if lacks:
                    log.warning("%s: its plan lacks %s; not backfilled", label, ", ".join(lacks))
        return out

    def _scopes(
        self, progress: Progress, limits: Mapping[str, Mapping[str, DatasetLimits]]
    ) -> dict[str, list[_Scope]]:
        """Each account's scopes in the order they are read: the account, then its zones by tag."""

        def scope(tag: str, account: str, attrs: dict[str, str], ledgers: dict[str, Ledger]) -> _Scope:
            lim = limits.get(tag, {})
            read = tuple(
                d for d in self.datasets if d.dataset in ledgers and lim.get(d.dataset, _OFF).enabled
            )
            return _Scope(tag, account, attrs, read, lim, ledgers)

        out = {a: [scope(a, a, {ACCOUNT: a}, progress.ledgers[a])] for a in progress.accounts}
        for tag, (name, account) in sorted(progress.zones.items()):
            attrs = {ZONE: tag, **zones.attributes(name, account)}
            out[account].append(scope(tag, account, attrs, progress.zone_ledgers[tag]))
        return out

    def _store(self) -> StateStore | None:
        if not self.options.handover or self.config.state_dir is None:
            return None
        return StateStore(self.config.state_dir, self.config.api_url)

    def _shapes(self) -> dict[str, tuple[tuple[str, ...], int]]:
        return {d.dataset: (d.fields, len(d.counter_key)) for d in self.catalogue.datasets}

    def _check_handover(self, store: StateStore, our_zones: set[str] | None = None) -> None:
        """Refuse at once (not after hours of work) to overwrite live counting: of our accounts, and
        of our zones once they are listed."""
        if not store.path.exists():
            return
        live, live_zones = store.load_all(self._shapes())
        ours = set(self.config.accounts) if self.config.accounts else set(live)
        clash = [
            (f"account {a}", d, ledger.counted)
            for a, by in live.items()
            if a in ours
            for d, ledger in by.items()
        ]
        for tag in sorted((our_zones or set()) & set(live_zones)):
            clash.extend((f"zone {tag}", d, ledger.counted) for d, ledger in live_zones[tag].items())
        if clash:
            a, d, c = clash[0]
            raise BackfillError(
                f"state file {store.path} already holds live counts ({a}, {d}, counted to "
                f"{c.isoformat()}): the live bridge's counters would not continue from the backfill. "
                "Run the backfill before the bridge's first start (or with an empty state_dir), or "
                "use --no-state and --to <the bridge's first counted minute>."
            )

    def _handover(self, store: StateStore, progress: Progress) -> None:
        self._check_handover(store, set(progress.zones))
        saved, saved_zones = store.load_all(self._shapes())
        for account, by_dataset in progress.ledgers.items():
            saved.setdefault(account, {}).update(by_dataset)
        for tag, by_dataset in progress.zone_ledgers.items():
            saved_zones.setdefault(tag, {}).update(by_dataset)
        store.save(saved, saved_zones)
        store.instance_id()  # kept beside it: OTLP series continue under the same instance
        log.info(
            "state file %s written: live counting continues from %s with the backfilled totals",
            store.path,
            progress.end.isoformat(),
        )

    # --- where to start and end ----------------------------------------------------------

    def _range(self, limits: Mapping[str, Mapping[str, DatasetLimits]]) -> tuple[datetime, datetime]:
        now = self.clock.now()
        step = self.options.step
        keeps = min(
            (lim.not_older_than for by in limits.values() for lim in by.values() if lim.enabled),
            default=2_678_400,
        )
        # A minute of margin for clock skew, as the live poller keeps.
        oldest = floor_minute(now - timedelta(seconds=keeps)) + MINUTE
        newest = floor_minute(now - self.config.settle)
        start = self.options.start or oldest
        if start < oldest:
            log.warning(
                "Cloudflare keeps %s of history: starting at %s, not %s",
                timedelta(seconds=keeps),
                oldest.isoformat(),
                start.isoformat(),
            )
            start = oldest
        start = _ceil(start, step)
        end = self.options.end or newest
        if end > newest:
            raise BackfillError(
                f"--to {end.isoformat()}: only minutes settled {self.config.settle} ago are final; "
                f"the newest is {newest.isoformat()}"
            )
        if end <= start:
            raise BackfillError(f"nothing to backfill between {start.isoformat()} and {end.isoformat()}")
        return start, end

    def _resume_or_start(
        self,
        accounts: tuple[str, ...],
        limits: Mapping[str, Mapping[str, DatasetLimits]],
        listed: dict[str, tuple[str, str]],
    ) -> Progress:
        if self.progress_path.exists():
            progress = self._load(accounts, listed)
            log.info("resuming the backfill: spans before %s are done", progress.done.isoformat())
            return progress
        start, end = self._range(limits)

        def new(tag: str, datasets: tuple[Dataset, ...]) -> dict[str, Ledger]:
            ledgers = {}
            for d in datasets:
                if limits[tag].get(d.dataset, _OFF).enabled:
                    ledger = Ledger.starting_at(d.fields, start, d.float_fields)
                    ledger.idle_ttl = self.config.idle_series_ttl or None
                    ledgers[d.dataset] = ledger
            return ledgers

        progress = Progress(
            start,
            end,
            self.options.step,
            accounts,
            start,
            {a: new(a, self.account_datasets) for a in accounts},
            dict.fromkeys(accounts, 0),
            zones=listed,
            zone_ledgers={tag: new(tag, self.zone_datasets) for tag in listed},
        )
        self._save(progress)
        return progress

    def _load(self, accounts: tuple[str, ...], listed: dict[str, tuple[str, str]]) -> Progress:
        try:
            data = json.loads(self.progress_path.read_text(encoding="utf-8"))
            start, end = datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
            step = timedelta(seconds=int(data["step"]))
            mismatch = [
                name
                for name, same in (
                    ("api_url", data["api_url"] == self.config.api_url),
                    ("datasets", data["datasets"] == [d.dataset for d in self.datasets]),
                    ("accounts", tuple(data["accounts"]) == accounts),
                    ("zones", set(data.get("zones", {})) == set(listed)),
                    ("step", step == self.options.step),
                    ("--from", self.options.start is None or _ceil(self.options.start, step) == start),
                    ("--to", self.options.end is None or self.options.end == end),
                )
                if not same
            ]
            if mismatch:
                raise BackfillError(
                    f"{self.progress_path} is the progress of another backfill ({', '.join(mismatch)} "
                    "differ): rerun with the same options, or remove it (and its output) to start over"
                )
            requests = {str(a): int(n) for a, n in data["requests"].items()}
            done = datetime.fromisoformat(data["done"])
            # the names as the run started (a zone renamed since keeps its series)
            names = {str(t): (str(z["name"]), str(z["account"])) for t, z in data.get("zones", {}).items()}
            return Progress(
                start,
                end,
                step,
                accounts,
                done,
                self._read_ledgers(data["ledgers"]),
                requests,
                zones=names,
                zone_ledgers=self._read_ledgers(data.get("zone_ledgers", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackfillError(
                f"{self.progress_path}: unusable progress file ({exc}); remove it to start over"
            ) from None

    def _read_ledgers(self, raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Ledger]]:
        shapes = {d.dataset: (d.fields, len(d.counter_key)) for d in self.datasets}
        ledgers: dict[str, dict[str, Ledger]] = {}
        for tag, by_dataset in raw.items():
            ledgers[tag] = {}
            for name, data in by_dataset.items():
                fields, width = shapes[name]
                ledger = Ledger.from_json(data, fields, width)
                ledger.idle_ttl = self.config.idle_series_ttl or None
                ledgers[tag][name] = ledger
        return ledgers

    def _save(self, progress: Progress) -> None:
        document = progress.to_json(self.config.api_url, [d.dataset for d in self.datasets])
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        write_atomically(self.progress_path, text.encode("utf-8"))

    @staticmethod
    def _spans(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        out = []
        at = start
        while at < end:
            nxt = min(_floor(at, DAY) + DAY, end)
            out.append((at, nxt))
            at = nxt
        return out

    # --- one scope's dataset over one span ---------------------------------------------

    async def _dataset_span(self, scope: _Scope, dataset: Dataset, span: Span) -> None:
        ledger = scope.ledgers[dataset.dataset]
        width, bucket = self._sum_buckets[dataset.dataset]
        sampler = _Sampler(dataset, scope.attributes, span, ledger, self.options.step)
        async for when, rows in self._pages(scope, dataset, Shape.SUMS, bucket, span.start, span.end):
            sampler.advance_to(when)  # the step boundaries up to this bucket, as the totals stood there
            ledger.apply(_plan(ledger.settled, min(when + width, span.end)), rows, {})
        sampler.advance_to(span.end)
        sampler.close()
        if dataset.dataset in self._gauge_buckets:
            await self._gauges(scope, dataset, span, self._gauge_buckets[dataset.dataset])

    async def _gauges(self, scope: _Scope, dataset: Dataset, span: Span, bucket: str) -> None:
        """Cloudflare's quantiles per quantile window, stamped at the window's end: windows ending in
        [span.start, span.end), and at span.end for the last span; never merged across windows."""
        assert self.progress is not None
        window = self.config.quantile_window
        first = _ceil(self.progress.start, window)  # whole windows only
        last = _floor(self.progress.end, window)
        lo = max(first, span.start - window)
        hi = min(last, span.end if span.last else span.end - window)
        if hi <= lo:
            return
        async for when, rows in self._pages(scope, dataset, Shape.GAUGES, bucket, lo, hi):
            stamp = _epoch(when + window)
            for name, attrs, value in snapshot.gauge_points(dataset, scope.attributes, rows, self.quantiles):
                span.add(name, tuple(attrs.items()), stamp, value)

    async def _pages(
        self,
        scope: _Scope,
        dataset: Dataset,
        shape: Shape,
        bucket: str,
        start: datetime,
        end: datetime,
    ) -> AsyncIterator[tuple[datetime, dict[SeriesKey, Any]]]:
        """(bucket start, rows) in time order over [start, end), in queries of at most maxDuration."""
        assert self._client is not None and self.progress is not None
        client = self._client
        limits = scope.limits[dataset.dataset]
        widest = timedelta(seconds=limits.max_duration)
        piece = start
        while piece < end:
            query = BucketQuery(dataset, shape, bucket, piece, min(end, piece + widest))
            at = piece
            while at < query.end:

                def page(at: datetime = at, query: BucketQuery = query) -> Awaitable[Page]:
                    return client.page(scope.tag, query, at, limits.max_page_size, self.quantiles)

                buckets, at = await self._call(page)
                requests = self.progress.requests
                requests[scope.account] = requests.get(scope.account, 0) + 1
                self.requests += 1
                self._progressed()
                for when, rows in buckets:
                    yield when, rows
            piece = query.end

    # --- requests: the rate budget and retries -------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            wait = self.budget.wait()
            if wait > 0:
                log.info("query budget spent: waiting %.0fs", wait)
                await self._sleep(wait)
                continue
            self.budget.spend()
            try:
                return await call()
            except errors.RateLimited as exc:
                log.warning("Cloudflare's query budget is spent (%s): waiting for it", exc)
                self.budget.depleted()
            except errors.CloudflareError as exc:
                attempt += 1
                if not exc.retryable or attempt >= self.options.attempts:
                    raise
                delay = 2.0 ** (attempt - 1)
                log.info(
                    "Cloudflare call failed (%s: %s); retry %d in %.0fs",
                    type(exc).__name__,
                    exc,
                    attempt,
                    delay,
                )
                await self._sleep(delay)


def _plan(start: datetime, end: datetime) -> Plan:
    """Minutes [start, end) become final at once: history is settled."""
    return Plan(
        settling=Range(start, end),
        open=Range(end, end),
        quantiles=Range(end, end),
        skipped=Range(end, end),
        abandon_open=False,
        behind=False,
    )


class _Sampler:
    """Samples one scope's exported counters of one dataset at step boundaries into a span.

    A series seen for the first time gets a zero sample at the boundary before, so increase()
    over any window counts its first minutes too (Prometheus does not extrapolate below zero)."""

    def __init__(
        self, dataset: Dataset, scope: Mapping[str, str], span: Span, ledger: Ledger, step: timedelta
    ) -> None:
        self.dataset, self.scope, self.span, self.ledger, self.step = dataset, scope, span, ledger, step
        self.present: set[tuple[str, Attributes]] = set()
        self.last: int | None = None  # the boundary sampled last in this span
        self.at = span.start  # the next boundary to sample

    def _points(self) -> list[tuple[str, Attributes, float]]:
        exact_fields = frozenset(self.ledger.float_index)
        points = snapshot.counter_points(self.dataset, self.scope, self.ledger.totals, exact_fields)
        return [(name, tuple(attrs.items()), value) for name, attrs, value in points]

    def _zeros(self, points: list[tuple[str, Attributes, float]]) -> None:
        """A zero sample at the last boundary for the series that appeared since."""
        if self.last is None:
            return
        for name, attrs, _ in points:
            if (name, attrs) not in self.present:
                self.span.add(name, attrs, self.last, 0)

    def record(self, when: datetime) -> None:
        points = self._points()
        self._zeros(points)
        stamp = _epoch(when)
        for name, attrs, value in points:
            self.span.add(name, attrs, stamp, value)
        self.present = {(name, attrs) for name, attrs, _ in points}
        self.last = stamp

    def advance_to(self, boundary: datetime) -> None:
        """Sample every step boundary up to `boundary` (inclusive), the ledger settled to each;
        the span's end is sampled by the next span (or by close() for the last one)."""
        while self.at <= boundary and self.at <= self.span.end:
            if self.ledger.settled < self.at:
                self.ledger.apply(_plan(self.ledger.settled, self.at), {}, {})
            if self.at < self.span.end:
                self.record(self.at)
            self.at += self.step

    def close(self) -> None:
        if self.ledger.settled < self.span.end:
            self.ledger.apply(_plan(self.ledger.settled, self.span.end), {}, {})
        if self.span.last:
            self.record(self.span.end)
        else:  # the next span samples the end; the zeros of series new since belong here
            self._zeros(self._points())
