"""Polling one account: plan the windows, ask Cloudflare once, apply the answer to the ledger.

The retry policy lives here (gql's is not used): transient failures are retried with jittered
exponential backoff inside the cycle; Cloudflare's `budget` error blocks the credential's budget
for its 5 minutes; authorization and validation errors are never retried within a cycle and back
the account off. A failed cycle leaves the ledger untouched, so its minutes are fetched later.
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
from otelbridge.cloudflare import errors
from otelbridge.cloudflare.answers import QuantileRow
from otelbridge.cloudflare.client import CloudflareClient, DatasetLimits
from otelbridge.cloudflare.queries import AliasRequest, Shape
from otelbridge.ledger import AccountLedger, Rows
from otelbridge.ratelimit import RateBudget

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
    account: str
    ledger: AccountLedger
    budget: RateBudget  # the credential's, or the account's own with account-based rate limits
    limits: DatasetLimits | None = None
    quantiles: dict[str, QuantileRow] = field(default_factory=dict)
    up: bool = False
    poll_seconds: float = 0.0
    failures: int = 0  # consecutive failed cycles
    next_attempt: datetime | None = None
    last_error: str = ""
    settled_now: tuple[windows.Range, Rows] | None = None  # what the last cycle made final


class AccountPoller:
    def __init__(
        self,
        client: CloudflareClient,
        timing: Callable[[DatasetLimits], windows.Timing],
        poll_interval: timedelta,
        outcomes: Counter[str],
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._timing = timing
        self._interval = poll_interval
        self.outcomes = outcomes
        self._policy = policy
        self._sleep = sleep
        self._rng = random.Random()

    def due(self, state: AccountState, now: datetime) -> bool:
        return state.next_attempt is None or now >= state.next_attempt

    async def poll(self, state: AccountState, now: datetime) -> bool:
        """One cycle for one account. Returns True when it is still catching up."""
        started = time.perf_counter()
        state.settled_now = None
        try:
            behind = await self._cycle(state, now)
        except errors.CloudflareError as exc:
            self._failed(state, now, exc)
            return False
        finally:
            state.poll_seconds = time.perf_counter() - started
        if state.failures:
            log.info("account %s: polling again after %d failed cycle(s)", state.account, state.failures)
        state.up, state.failures, state.next_attempt, state.last_error = True, 0, None, ""
        return behind

    def _failed(self, state: AccountState, now: datetime, exc: errors.CloudflareError) -> None:
        state.up = False
        state.failures += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        cycles = 1 if exc.retryable else min(2 ** (state.failures - 1), self._policy.max_backoff_cycles)
        state.next_attempt = now + self._interval * cycles if cycles > 1 else None
        if isinstance(exc, errors.RateLimited):
            state.next_attempt = now + timedelta(seconds=exc.retry_after)
        log.warning(
            "account %s: poll failed (%s); keeping the last good data, next try %s",
            state.account,
            state.last_error,
            "next cycle" if state.next_attempt is None else state.next_attempt.isoformat(),
        )

    async def _cycle(self, state: AccountState, now: datetime) -> bool:
        if state.limits is None:
            limits = await self._call(state, lambda: self._client.settings(state.account))
            if not limits.enabled:  # not kept: the settings are read again on the next try
                raise errors.NotAuthorized("workersInvocationsAdaptive is not enabled for this account")
            state.limits = limits
        limits = state.limits
        ledger = state.ledger
        plan = windows.plan(now, ledger.settled, ledger.counted, self._timing(limits))
        requests = [AliasRequest("quantiles", Shape.QUANTILES, plan.quantiles.start, plan.quantiles.end)]
        for alias, rng in (("settling", plan.settling), ("open", plan.open)):
            if not rng.empty:
                requests.append(AliasRequest(alias, Shape.SUMS, rng.start, rng.end))
        answer = await self._call(
            state, lambda: self._client.workers(state.account, tuple(requests), limits.max_page_size)
        )
        for _ in range(answer.requests - 1):  # full pages were followed with extra requests
            state.budget.spend()
        if not plan.skipped.empty:
            log.error(
                "account %s: %d minute(s) from %s could not be counted: Cloudflare keeps only %s of data",
                state.account,
                plan.skipped.minutes,
                plan.skipped.start.isoformat(),
                timedelta(seconds=limits.not_older_than),
            )
        settling = answer.sums.get("settling", {})
        ledger.apply(plan, settling, answer.sums.get("open", {}))
        state.settled_now = (plan.settling, settling)
        state.quantiles = answer.quantiles.get("quantiles", {})
        return plan.behind

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
                    "account %s: Cloudflare call failed (%s: %s); retry %d of %d in %.1fs",
                    state.account,
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
