"""The bridge: accounts, pollers, ledgers, the snapshot, and both export paths, put together.

Cloudflare ──poll──► ledgers ──build──► Snapshot ──swap──► instrument callbacks
                                                            └─► one SDK collection per poll
                                                                 ├─► Prometheus page (bytes)
                                                                 └─► OTLP exporter (background)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricReader

from otelbridge import gcpause, otlp, snapshot, telemetry, windows
from otelbridge.catalogue import Catalogue, Dataset
from otelbridge.clock import Clock, SystemClock
from otelbridge.cloudflare.client import CloudflareClient, DatasetLimits
from otelbridge.cloudflare.errors import CloudflareError
from otelbridge.config import Config
from otelbridge.exposition import MetricsPage
from otelbridge.history import History
from otelbridge.ledger import Ledger
from otelbridge.otlp import OtlpExporter
from otelbridge.poller import AccountPoller, AccountState, RetryPolicy, Sleep
from otelbridge.ratelimit import RateBudget
from otelbridge.state import StateStore
from otelbridge.windows import MINUTE, floor_minute
from otelbridge.zones import Zones

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001  # seconds


def _counted(state: AccountState, default: datetime) -> datetime:
    """The account's watermark: the oldest of its datasets' (all of them are counted up to it);
    `default` when it has none (only its zones are polled)."""
    return min((ledger.counted for ledger in state.ledgers.values()), default=default)


def _oldest(moments: Iterable[datetime]) -> str | None:
    oldest = min(moments, default=None)
    return oldest.isoformat() if oldest is not None else None


def _datasets_status(state: AccountState) -> dict[str, dict[str, object]]:
    return {
        name: {
            "settled": ledger.settled.isoformat(),
            "counted": ledger.counted.isoformat(),
            "series": len(ledger.totals),
            "gap_minutes": ledger.gap_minutes,
        }
        for name, ledger in state.ledgers.items()
        if name not in state.skipped
    }


class Bridge:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        catalogue: Catalogue | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        instance_id: str | None = None,
        extra_readers: tuple[MetricReader, ...] = (),
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        # Renders and OTLP encodings run on worker threads for seconds at 10^5 series; scrapes are
        # served on the event loop. A thread waiting for the GIL gets it after this interval (5 ms
        # by default): at 1 ms, with 20 scrapers and a render running, scrape p99 fell from 154 to
        # 63 ms for about the same CPU.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.catalogue = config.catalogue(catalogue)  # profile and per-metric choices applied
        self.quantiles = config.quantile_set
        # Account-scope datasets are polled per account, zone-scope ones per group of 10 zones.
        self.datasets = tuple(d for d in self.catalogue.enabled if d.scope == "account")
        self.zone_datasets = tuple(d for d in self.catalogue.enabled if d.scope == "zone")
        self.outcomes: Counter[str] = Counter()
        self.outcomes_otlp: Counter[str] = Counter()  # OTLP exports by result: success, failure
        self._zones = Zones(
            config.zones,
            self.clock,
            self.outcomes,
            lambda label, saved: self._ledgers(label, self.zone_datasets, saved),
        )
        self.budget = RateBudget(config.rate_limit, self.clock)
        self.accounts: dict[str, AccountState] = {}
        keys = {d.dataset: d.counter_key for d in self.catalogue.datasets}
        self.store = StateStore(config.state_dir, config.api_url, keys) if config.state_dir else None
        self._snapshot = snapshot.EMPTY
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._client: CloudflareClient | None = None
        self._poller: AccountPoller | None = None
        self._zone_poller: AccountPoller | None = None
        self._saved: dict[str, dict[str, Ledger]] = {}
        self.discovery_error = ""
        self._jitter = random.Random()
        # The status page charts requests and errors of the dataset that has them by script first.
        charted = next((d for d in self.datasets if {"requests", "errors"} <= set(d.fields)), None)
        self._charted = charted.dataset if charted is not None else None
        self.history = History(charted.fields if charted is not None else ("requests", "errors"))

        limits = telemetry.cardinality_limits(config.max_series)
        # OTLP sends what the page render collected (see exposition): one SDK reader, two outputs.
        self.otlp_exporter: OtlpExporter | None = otlp.otlp_exporter(config)
        self._otlp_outcomes = otlp.ExportOutcomes(otlp.target(config) or "")
        self.page = MetricsPage(limits, keep_data=self.otlp_exporter is not None)
        readers: list[MetricReader] = [self.page.reader, *extra_readers]
        self._survivors = gcpause.Survivors()
        self._otlp_task: asyncio.Task[None] | None = None
        self._otlp_pending = False
        # Kept in the state directory: OTLP series (instance label) continue across restarts.
        if instance_id is None and self.store is not None:
            instance_id = self.store.instance_id()
        self.provider: MeterProvider = telemetry.meter_provider(
            readers, self.catalogue, self.current, telemetry.resource(instance_id)
        )

    def current(self) -> snapshot.Snapshot:
        return self._snapshot

    def _timing(self, limits: DatasetLimits) -> windows.Timing:
        c = self.config
        return windows.Timing(
            delay=c.delay,
            settle=c.settle,
            quantile_window=c.quantile_window,
            not_older_than=timedelta(seconds=limits.not_older_than),
            max_duration=timedelta(seconds=limits.max_duration),
        )

    async def start(self) -> None:
        """Connect, find the accounts and restore saved state. A failed discovery is retried each cycle."""
        self._client = CloudflareClient(
            self.config.api_url,
            self.config.credentials,
            self.quantiles,
            timeout=self.config.request_timeout.total_seconds(),
            account_based_rate_limit=self.config.account_based_rate_limit,
        )
        await self._client.__aenter__()
        self._poller = AccountPoller(
            self._client,
            self.datasets,
            self._timing,
            self.config.poll_interval,
            self.outcomes,
            self._retry,
            self._sleep,
        )
        self._zone_poller = AccountPoller(
            self._client,
            self.zone_datasets,
            self._timing,
            self.config.poll_interval,
            self.outcomes,
            self._retry,
            self._sleep,
        )
        shapes = {d.dataset: (d.fields, len(d.counter_key)) for d in (*self.datasets, *self.zone_datasets)}
        if self.store:
            self._saved, self._zones.saved = self.store.load_all(shapes)
        if self.config.accounts:
            self._add_accounts(self.config.accounts)
        else:
            await self._discover()
        self.publish()

    def _ledgers(
        self, label: str, datasets: tuple[Dataset, ...], saved: dict[str, Ledger]
    ) -> dict[str, Ledger]:
        """A ledger per dataset: the saved one, or a new one starting `lookback` ago."""
        start = floor_minute(self.clock.now() - self.config.lookback)
        ledgers = {}
        for d in datasets:
            ledger = saved.get(d.dataset) or Ledger.starting_at(d.fields, start)
            ledger.count_exactly(d.float_fields)
            ledger.idle_ttl = self.config.idle_series_ttl or None
            ledgers[d.dataset] = ledger
            if d.dataset not in saved:
                log.info(
                    "%s: counting from %s (%s, lookback %s)",
                    label,
                    start.isoformat(),
                    d.dataset,
                    self.config.lookback,
                )
            else:
                log.info(
                    "%s: resuming from saved state, counted up to %s (%s)",
                    label,
                    ledger.counted.isoformat(),
                    d.dataset,
                )
        return ledgers

    def _add_accounts(self, tags: tuple[str, ...]) -> None:
        for tag in tags:
            ledgers = self._ledgers(f"account {tag}", self.datasets, self._saved.get(tag, {}))
            budget = (
                RateBudget(self.config.rate_limit, self.clock)
                if self.config.account_based_rate_limit
                else None
            )
            self.accounts[tag] = AccountState(tag, ledgers, budget or self.budget)

    @property
    def zones(self) -> dict[str, AccountState]:
        """The zones polled, by tag."""
        return self._zones.states

    def zone_groups(self, account: str) -> list[list[AccountState]]:
        return self._zones.groups(account)

    async def _poll_zones(self, account: str) -> bool:
        if not self.zone_datasets:
            return False
        assert self._client is not None and self._zone_poller is not None
        return await self._zones.poll(self._client, self._zone_poller, account, self.accounts[account].budget)

    async def _discover(self) -> None:
        """List the credential's accounts over REST; on failure, try again next cycle."""
        assert self._client is not None
        try:
            found = await self._client.accounts()
        except CloudflareError as exc:
            self.outcomes[exc.outcome] += 1
            self.discovery_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "could not list the credential's accounts (%s); retrying next cycle", self.discovery_error
            )
            return
        self.outcomes["ok"] += 1
        self.discovery_error = "" if found else "the credential can see no accounts"
        log.info("discovered %d account(s): %s", len(found), ", ".join(a.id for a in found) or "none")
        self._add_accounts(tuple(a.id for a in found))

    async def poll_once(self, spread: float = 0.0) -> bool:
        """Poll every due account once, then publish. Returns True when an account is catching up.

        `spread`: up to this many seconds of random pause between accounts, so that many accounts
        (and many otelbridge instances) do not hit the API in one burst."""
        assert self._poller is not None, "start() first"
        behind = False
        started, queries_before = time.perf_counter(), sum(self.outcomes.values())
        polled, minutes, requests = 0, 0, 0.0
        if not self.accounts and not self.config.accounts:
            await self._discover()
        for i, state in enumerate(self.accounts.values()):
            if i and spread:
                await self._sleep(self._jitter.uniform(0, spread))
            now = self.clock.now()
            if self.datasets and self._poller.due(state, now):
                counted_before = _counted(state, now)
                behind |= await self._poller.poll(state, now)
                polled += 1
                minutes += (_counted(state, now) - counted_before) // MINUTE
                self.history.polled(state.account, now, state.poll_seconds, state.up)
                settled = state.settled_now.get(self._charted) if self._charted else None
                if settled is not None:  # summed off the loop: 10^5 rows take a while
                    point = await asyncio.to_thread(self.history.point, *settled)
                    if point is not None:
                        self.history.add(state.account, point)
                        requests += point.requests
        for account, state in list(self.accounts.items()):
            behind |= await self._poll_zones(account)
            if not self.datasets:  # only its zones are polled: up while listing them works
                state.up = self._zones.listed(account)
        if self.store is not None:  # never raises: a failed save is logged, counted and retried
            await asyncio.to_thread(
                self.store.persist,
                {a: s.ledgers for a, s in self.accounts.items()},
                {z: s.ledgers for z, s in self.zones.items()},
            )
        # Off the loop: at 10^5 series, building the snapshot takes tens of milliseconds. Nothing
        # changes the ledgers meanwhile (polls run one after another).
        await asyncio.to_thread(self.publish)
        now = self.clock.now()
        lag = max((now - _counted(s, now) for s in self.accounts.values() if s.ledgers), default=None)
        log.info(
            "poll: %d/%d accounts polled, %d up, %d minutes counted, %d Worker requests settled, "
            "%d API calls, %.2fs, watermark lag %s",
            polled,
            len(self.accounts),
            sum(s.up for s in self.accounts.values()),
            minutes,
            requests,
            sum(self.outcomes.values()) - queries_before,
            time.perf_counter() - started,
            "n/a" if lag is None else f"{lag.total_seconds():.0f}s",
        )
        await self._refresh_outputs()
        return behind

    async def _refresh_outputs(self) -> None:
        """Render the /metrics page (awaited), then export OTLP in the background: a slow or absent
        Collector must not hold up polling. Exports never overlap; a poll that lands during one
        makes exactly one more follow it, so the newest data is always sent."""
        await asyncio.to_thread(self._render)
        if self.otlp_exporter is None:
            return
        self._otlp_pending = True
        if self._otlp_task is None or self._otlp_task.done():
            self._otlp_task = asyncio.create_task(self._export_while_pending())

    def _render(self) -> None:
        # Frozen before the collector resumes: what the render left alive is not walked again.
        with gcpause.paused():
            self.page.render()
            self._survivors.keep()

    async def otlp_idle(self) -> None:
        """Wait until no OTLP export runs in the background (for orderly shutdown, tests, bench)."""
        if self._otlp_task is not None:
            await asyncio.gather(self._otlp_task, return_exceptions=True)

    async def _export_while_pending(self) -> None:
        while self._otlp_pending:
            self._otlp_pending = False
            await asyncio.to_thread(self._export_otlp)

    def _export_otlp(self) -> None:
        data, exporter = self.page.take_data(), self.otlp_exporter
        if data is None or exporter is None:
            return
        try:
            batches = exporter.encode(data)
            del data
            result = MetricExportResult.SUCCESS
            while result is MetricExportResult.SUCCESS:
                # Encoding makes millions of short-lived objects: hold the GC off for it (see
                # gcpause), but not for the send, which may wait on a Collector for the whole OTLP
                # timeout. One batch at a time: only its protobuf is held.
                with gcpause.paused():
                    batch = next(batches, None)
                if batch is None:
                    break
                result = exporter.send((batch,))
        except Exception:  # the exporter reports its failures as a result; this is only a guard
            log.exception("OTLP export failed")
            result = MetricExportResult.FAILURE
        self.outcomes_otlp[result.name.lower()] += 1
        self._otlp_outcomes.record(result is MetricExportResult.SUCCESS)

    def publish(self) -> None:
        self._snapshot = snapshot.build(
            self.catalogue,
            self.quantiles,
            {a: s.ledgers for a, s in self.accounts.items()},
            {
                a: snapshot.AccountHealth(s.up, s.poll_seconds, s.quantiles, s.levels)
                for a, s in self.accounts.items()
            },
            snapshot.Health(
                dict(self.outcomes),
                self.rate_limit_used(),
                dict(self.outcomes_otlp),
                discovery_up=self.discovery_up,
                state_up=self.store.health.ok if self.store else None,
                state_save_failures=self.store.health.failures if self.store else 0,
                split_requests=self._split_requests(),
            ),
            self.clock.now(),
            self.config.max_series,
            self._zones.scopes(),
        )

    def _split_requests(self) -> dict[str, int]:
        pollers = (p for p in (self._poller, self._zone_poller) if p is not None)
        return dict(sum((p.split_requests for p in pollers), Counter()))

    @property
    def discovery_up(self) -> bool:
        """The accounts to poll are known: configured, or listed by a successful discovery."""
        return bool(self.accounts)

    def rate_limit_used(self) -> int:
        """Queries spent in the current window, over every budget in use."""
        budgets = {id(s.budget): s.budget for s in self.accounts.values()} or {id(self.budget): self.budget}
        return sum(b.used for b in budgets.values())

    def status(self) -> dict[str, object]:
        """What /status and `otelbridge check` show: no secrets, only where counting stands."""
        state = None
        if self.store is not None:
            h = self.store.health
            state = {"ok": h.ok, "last_error": h.last_error or None, "failures": h.failures}
        accounts_up = all(s.up for s in (*self.accounts.values(), *self.zones.values()))
        split = self._split_requests()
        return {
            "ok": self.discovery_up and accounts_up and (state is None or bool(state["ok"])),
            "api_url": self.config.api_url,
            "discovery": {"ok": self.discovery_up, "last_error": self.discovery_error or None},
            "discovery_error": self.discovery_error or None,
            "state": state,
            "accounts": {
                tag: {
                    "up": s.up,
                    "settled": _oldest(ledger.settled for ledger in s.ledgers.values()),
                    "counted": _oldest(ledger.counted for ledger in s.ledgers.values()),
                    "series": sum(len(ledger.totals) for ledger in s.ledgers.values()),
                    "failures": s.failures,
                    "last_error": s.last_error or None,
                    "gap_minutes": sum(ledger.gap_minutes for ledger in s.ledgers.values()),
                    "datasets": _datasets_status(s),
                    "split_requests": split.get(tag, 0),
                    "zones": self._zones.status(tag, _datasets_status) if self.zone_datasets else None,
                }
                for tag, s in self.accounts.items()
            },
            "skipped": [
                {"zone": tag, "name": z.name, "account": z.owner, "dataset": name}
                for tag, z in sorted(self.zones.items())
                for name in z.skipped
            ],
            "api_requests": dict(self.outcomes),
            "rate_limit_used": self.rate_limit_used(),
            "otlp_exports": dict(self.outcomes_otlp),
            "series": self._snapshot.series,
            "series_dropped": self._snapshot.dropped,
            "page_render_seconds": round(self.page.page.render_seconds, 4),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on the interval until `stop` is set; catch up without waiting while behind."""
        interval = self.config.poll_interval.total_seconds()
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            spread = min(2.0, interval / (4 * max(1, len(self.accounts))))
            try:
                behind = await self.poll_once(spread)
            except Exception:  # a bug must not stop the bridge; the next cycle starts from the ledger
                log.exception("poll cycle failed unexpectedly")
                behind = False
            pause = 0.0 if behind else max(0.0, interval - (loop.time() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause or 0.001)

    async def close(self) -> None:
        await self.otlp_idle()
        self._survivors.release()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
        await asyncio.to_thread(self.provider.shutdown)
        if self.otlp_exporter is not None:
            await asyncio.to_thread(self.otlp_exporter.shutdown)
