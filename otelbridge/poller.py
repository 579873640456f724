"""Polling one account, or one group of at most 10 zones: plan each dataset's windows, ask
Cloudflare once for all of them, apply the answer to the ledgers (one per dataset of the account
or zone).

The retry policy lives here (gql's is not used): transient failures are retried with jittered
exponential backoff inside the cycle; Cloudflare's `budget` error blocks the credential's budget
for its 5 minutes; authorization and validation errors are never retried within a cycle and back
the account off. A failed cycle leaves the ledgers untouched, so their minutes are fetched later.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from otelbridge import windows
from otelbridge.catalogue import Dataset
from otelbridge.cloudflare import errors
from otelbridge.cloudflare.answers import LevelRows, QuantileRow
from otelbridge.cloudflare.client import Answer, CloudflareClient, DatasetLimits
from otelbridge.cloudflare.queries import AliasRequest, Shape, alias
from otelbridge.ledger import Ledger, Rows, SeriesKey
from otelbridge.ratelimit import RateBudget
from otelbridge.windows import MINUTE

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # per cycle, for transient failures
    backoff: float = 1.0  # seconds before the first retry; doubles each time, with jitter
    max_backoff_cycles: int = 16  # a failing account is tried at most every 16 poll intervals


@dataclass
class AccountState:
    """Where polling stands for one scope: an account, or a zone (`scope="zone"`)."""

    account: str  # the scope's tag: the account's, or the zone's
    ledgers: dict[str, Ledger]  # by dataset
    budget: RateBudget  # the credential's, or the account's own with account-based rate limits
    limits: dict[str, DatasetLimits] | None = None  # by dataset, once read from settings
    quantiles: dict[str, dict[SeriesKey, QuantileRow]] = field(default_factory=dict)  # by dataset
    levels: dict[str, LevelRows] = field(default_factory=dict)  # by dataset
    level_seen: dict[str, dict[SeriesKey, datetime]] = field(default_factory=dict)  # by dataset
    up: bool = False
    poll_seconds: float = 0.0
    failures: int = 0  # consecutive failed cycles
    next_attempt: datetime | None = None
    last_error: str = ""
    # by dataset, what the last cycle made final (the status page's history)
    settled_now: dict[str, tuple[windows.Range, Rows]] = field(default_factory=dict)
    scope: str = "account"  # or "zone"
    name: str = ""  # a zone's name
    owner: str = ""  # a zone's account tag
    skipped: tuple[str, ...] = ()  # datasets the zone's plan lacks (its settings say not enabled)

    @property
    def label(self) -> str:
        return f"zone {self.name} ({self.account})" if self.scope == "zone" else f"account {self.account}"

    @property
    def budget_owner(self) -> str:
        """The account whose requests these are (a zone's owner)."""
        return self.owner or self.account


def keep_levels(
    kept: LevelRows, fresh: LevelRows, seen: dict[SeriesKey, datetime], end: datetime, dataset: Dataset
) -> LevelRows:
    """This cycle's levels, and the last levels of groups absent from it (a resource that reports
    now and then) for `level_window` after the window they were last answered in, ending `end`.
    `seen` (group -> that window's end) is updated."""
    seen.update(dict.fromkeys(fresh, end))
    horizon = end - MINUTE * dataset.level_window
    for key in [k for k, when in seen.items() if when <= horizon]:
        del seen[key]
    return {**{k: v for k, v in kept.items() if k in seen}, **fresh}


class AccountPoller:
    def __init__(
        self,
        client: CloudflareClient,
        datasets: tuple[Dataset, ...],
        timing: Callable[[DatasetLimits], windows.Timing],
        poll_interval: timedelta,
        outcomes: Counter[str],
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._datasets = datasets
        self._by_name = {d.dataset: d for d in datasets}
        self._timing = timing
        self._interval = poll_interval
        self.outcomes = outcomes
        self._policy = policy
        self._sleep = sleep
        self._rng = random.Random()
        # Requests beyond one per account or zone group (a full page was followed), by account
        self.split_requests: Counter[str] = Counter()

    def due(self, state: AccountState, now: datetime) -> bool:
        return state.next_attempt is None or now >= state.next_attempt

    async def poll(self, state: AccountState, now: datetime) -> bool:
        """One cycle for one account. Returns True when it is still catching up."""
        started = time.perf_counter()
        state.settled_now = {}
        try:
            behind = await self._cycle(state, now)
        except errors.CloudflareError as exc:
            self._failed(state, now, exc)
            return False
        finally:
            state.poll_seconds = time.perf_counter() - started
        self._succeeded(state)
        return behind

    def _succeeded(self, state: AccountState) -> None:
        if state.failures:
            log.info("%s: polling again after %d failed cycle(s)", state.label, state.failures)
        state.up, state.failures, state.next_attempt, state.last_error = True, 0, None, ""

    def _failed(self, state: AccountState, now: datetime, exc: errors.CloudflareError) -> None:
        state.up = False
        state.failures += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        cycles = 1 if exc.retryable else min(2 ** (state.failures - 1), self._policy.max_backoff_cycles)
        state.next_attempt = now + self._interval * cycles if cycles > 1 else None
        if isinstance(exc, errors.RateLimited):
            state.next_attempt = now + timedelta(seconds=exc.retry_after)
        log.warning(
            "%s: poll failed (%s); keeping the last good data, next try %s",
            state.label,
            state.last_error,
            "next cycle" if state.next_attempt is None else state.next_attempt.isoformat(),
        )

    async def _cycle(self, state: AccountState, now: datetime) -> bool:
        if state.limits is None:
            read = await self._call(state, lambda: self._client.settings(state.account, self._datasets))
            off = [name for name, limits in read.items() if not limits.enabled]
            if len(off) == len(read):  # nothing to poll: the settings are read again next time
                raise errors.NotAuthorized(f"{', '.join(off)}: not enabled for this account")
            if off:
                log.warning("account %s: %s not enabled; not polled", state.account, ", ".join(off))
            state.limits = read
        plans, requests = self._plan(state, now)
        pages = {name: limits.max_page_size for name, limits in state.limits.items()}
        answer = await self._call(state, lambda: self._client.fetch(state.account, requests, pages))
        self._spend_split(state, answer.requests)
        self._apply(state, plans, answer)
        return any(p.behind for p in plans.values())

    async def poll_zones(self, zones: list[AccountState], now: datetime) -> bool:
        """One cycle for a group of zones (at most 10, of one account) in one request. Returns True
        when one of them is still catching up. A zone the credential no longer sees fails alone."""
        started = time.perf_counter()
        for z in zones:
            z.settled_now = {}
        try:
            await self._zone_settings(zones, now)
            polled = [z for z in zones if z.limits is not None and set(z.limits) - set(z.skipped)]
            plans, wanted, pages = {}, {}, {}
            for z in polled:
                assert z.limits is not None
                plans[z.account], wanted[z.account] = self._plan(z, now)
                pages[z.account] = {name: limits.max_page_size for name, limits in z.limits.items()}
            answers = await self._call(zones[0], lambda: self._client.fetch_zones(wanted, pages))
        except errors.CloudflareError as exc:
            for z in zones:
                if isinstance(exc, errors.NotAuthorized):  # a plan may have changed: read it again
                    z.limits = None
                self._failed(z, now, exc)
            return False
        finally:
            for z in zones:
                z.poll_seconds = time.perf_counter() - started
        self._spend_split(zones[0], answers.requests)
        for z in zones:
            if z.limits is None:
                continue  # already failed: not visible to the credential
            answer = answers.zones.get(z.account)
            if answer is None and wanted.get(z.account):
                self._failed(z, now, errors.NotAuthorized(f"{z.label} not visible to this credential"))
                continue
            self._apply(z, plans.get(z.account, {}), answer or Answer({}, {}, {}, 0))
            self._succeeded(z)
        return any(p.behind for by_dataset in plans.values() for p in by_dataset.values())

    async def _zone_settings(self, zones: list[AccountState], now: datetime) -> None:
        """Read what each new zone's plan offers; datasets it lacks are skipped with one log line."""
        unread = tuple(z.account for z in zones if z.limits is None)
        if not unread:
            return
        read = await self._call(zones[0], lambda: self._client.zone_settings(unread, self._datasets))
        for z in zones:
            if z.account not in unread:
                continue
            if z.account not in read:
                z.limits = None
                self._failed(z, now, errors.NotAuthorized(f"{z.label} not visible to this credential"))
                continue
            z.limits = read[z.account]
            z.skipped = tuple(name for name, limits in z.limits.items() if not limits.enabled)
            if z.skipped:
                log.warning("%s: its plan lacks %s; not polled", z.label, ", ".join(z.skipped))

    def _spend_split(self, state: AccountState, requests: int) -> None:
        for _ in range(requests - 1):  # full pages were followed with extra requests
            state.budget.spend()
            self.split_requests[state.budget_owner] += 1

    def _plan(
        self, state: AccountState, now: datetime
    ) -> tuple[dict[str, windows.Plan], tuple[AliasRequest, ...]]:
        """Each polled dataset's windows, and the aliases asking for them."""
        assert state.limits is not None
        all_limits = state.limits
        plans = {}
        requests: list[AliasRequest] = []
        for d in self._datasets:
            if not all_limits[d.dataset].enabled:
                continue
            ledger = state.ledgers[d.dataset]
            plan = windows.plan(now, ledger.settled, ledger.counted, self._timing(all_limits[d.dataset]))
            plans[d.dataset] = plan
            gauges = plan.quantiles
            if d.quantile_gauges or d.average_gauges:
                requests.append(AliasRequest(d, "gauges", Shape.GAUGES, gauges.start, gauges.end))
            if d.level_gauges:
                requests.append(AliasRequest(d, "levels", Shape.LEVELS, gauges.start, gauges.end))
            for role, rng in (("settling", plan.settling), ("open", plan.open)):
                if d.counters and not rng.empty:  # a dataset of levels only has nothing to sum
                    requests.append(AliasRequest(d, role, Shape.SUMS, rng.start, rng.end))
        return plans, tuple(requests)

    def _apply(self, state: AccountState, plans: dict[str, windows.Plan], answer: Answer) -> None:
        assert state.limits is not None
        for name, plan in plans.items():
            if not plan.skipped.empty:
                log.error(
                    "%s: %d minute(s) of %s from %s could not be counted: Cloudflare keeps only %s",
                    state.label,
                    plan.skipped.minutes,
                    name,
                    plan.skipped.start.isoformat(),
                    timedelta(seconds=state.limits[name].not_older_than),
                )
            settling = answer.sums.get(alias(name, "settling"), {})
            state.ledgers[name].apply(plan, settling, answer.sums.get(alias(name, "open"), {}))
            state.settled_now[name] = (plan.settling, settling)
            state.quantiles[name] = answer.quantiles.get(alias(name, "gauges"), {})
            fresh = answer.levels.get(alias(name, "levels"), {})
            seen = state.level_seen.setdefault(name, {})
            kept = state.levels.get(name, {})
            state.levels[name] = keep_levels(kept, fresh, seen, plan.quantiles.end, self._by_name[name])

    async def _call(self, state: AccountState, call: Callable[[], Awaitable[T]]) -> T:
        budget = state.budget
        attempt = 0
        while True:
            wait = budget.wait()
            if wait > 0:
                self.outcomes["deferred"] += 1
                raise errors.RateLimited(f"query budget spent; next query allowed in {wait:.0f}s", wait)
            budget.spend()
            try:
                result = await call()
            except errors.RateLimited:
                self.outcomes[errors.RateLimited.outcome] += 1
                budget.depleted()
                raise
            except errors.CloudflareError as exc:
                self.outcomes[exc.outcome] += 1
                attempt += 1
                if not exc.retryable or attempt >= self._policy.attempts:
                    raise
                delay = self._policy.backoff * 2 ** (attempt - 1) * (0.5 + self._rng.random())
                log.info(
                    "%s: Cloudflare call failed (%s: %s); retry %d of %d in %.1fs",
                    state.label,
                    type(exc).__name__,
                    exc,
                    attempt,
                    self._policy.attempts - 1,
                    delay,
                )
                await self._sleep(delay)
                continue
            self.outcomes["ok"] += 1
            return result
