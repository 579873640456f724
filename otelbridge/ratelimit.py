"""A per-credential budget of GraphQL queries (Cloudflare: 300 per 5 minutes per user/token)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from otelbridge.clock import Clock

WINDOW = timedelta(minutes=5)


class RateBudget:
    def __init__(self, limit: int, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._spent: deque[datetime] = deque()
        self._blocked_until: datetime | None = None

    def _trim(self, now: datetime) -> None:
        while self._spent and now - self._spent[0] >= WINDOW:
            self._spent.popleft()

    @property
    def used(self) -> int:
        self._trim(self._clock.now())
        return len(self._spent)

    def wait(self) -> float:
        """Seconds until a query may be sent (0 when it may go now)."""
        now = self._clock.now()
        self._trim(now)
        if self._blocked_until is not None and now < self._blocked_until:
            return (self._blocked_until - now).total_seconds()
        if len(self._spent) < self.limit:
            return 0.0
        return (self._spent[0] + WINDOW - now).total_seconds()

    def spend(self) -> None:
        self._spent.append(self._clock.now())

    def depleted(self) -> None:
        """Cloudflare said the budget is gone: it asks to try again after 5 minutes."""
        self._blocked_until = self._clock.now() + WINDOW
