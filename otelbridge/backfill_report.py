"""How a long backfill goes: a progress bar on a terminal, a log line every 30 seconds otherwise.

Both say the days done, the requests spent (and per day of history per account, the figure that
sizes the rate budget) and the time left at the pace so far.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from otelbridge.backfill import Backfill

log = logging.getLogger("otelbridge.backfill")
LOG_EVERY = 30.0  # seconds between log lines when not on a terminal


def describe(backfill: Backfill) -> str:
    progress = backfill.progress
    if progress is None:
        return "starting"
    accounts = len(progress.accounts)
    days = (progress.done - progress.start).total_seconds() / 86400
    total_days = (progress.end - progress.start).total_seconds() / 86400
    spent = sum(progress.requests.values())
    per_day = spent / days / accounts if days > 0 and accounts else 0.0
    elapsed = time.monotonic() - backfill.started
    fraction, before = backfill.fraction, backfill.fraction_at_start
    # At the pace of this run: a resumed run's earlier days took no time of it.
    ran = fraction - before
    eta = "?" if ran <= 0 else f"{elapsed * (1 - fraction) / ran / 60:.1f} min"
    return (
        f"{accounts} account(s), {days:.1f} of {total_days:.1f} days done, {spent} requests "
        f"({per_day:.1f} per day of history per account), ETA {eta}"
    )


class Reporter:
    """Called by the backfill after every request and span."""

    def __init__(self, terminal: bool) -> None:
        self._terminal = terminal
        self._bar: Any = None
        self._task: Any = None
        self._last_log = time.monotonic()

    def __enter__(self) -> Reporter:
        if self._terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("backfill"), BarColumn(), TextColumn("{task.description}"), TimeRemainingColumn()
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=1.0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, backfill: Backfill) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=backfill.fraction, description=describe(backfill))
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY or backfill.fraction >= 1.0:
            self._last_log = now
            log.info("backfill: %s", describe(backfill))
