"""Minute windows: which minutes to ask Cloudflare for, given where counting stands. Pure logic.

Two boundaries per account, both minute-aligned:

    settled   every minute before it is final: its value was taken once it was `settle` old
    counted   every minute before it has been counted (the watermark); [settled, counted) is
              still open and is re-queried each cycle so late data is absorbed

A minute is first counted once its end is `delay` old and is final once its end is `settle` old.
Each cycle asks for two ranges: the minutes that become final now, and the still-open ones.
Both boundaries only ever move forward, so a minute is never skipped and never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Range:
    start: datetime  # inclusive, minute-aligned
    end: datetime  # exclusive, minute-aligned

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"range ends before it starts: {self.start} .. {self.end}")

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) / MINUTE)

    @property
    def empty(self) -> bool:
        return self.end == self.start


@dataclass(frozen=True)
class Timing:
    delay: timedelta  # a minute is first counted once its end is this old
    settle: timedelta  # a minute is final once its end is this old (>= delay)
    quantile_window: timedelta
    not_older_than: timedelta = timedelta(seconds=2_678_400)  # Cloudflare's retention for the dataset
    max_duration: timedelta = timedelta(seconds=259_200)  # widest range one query may ask for

    def __post_init__(self) -> None:
        if self.settle < self.delay:
            raise ValueError("settle must be at least delay")


@dataclass(frozen=True)
class Plan:
    """What one cycle asks for, and where the boundaries stand once its answer is applied."""

    settling: Range  # minutes that become final with this answer: [settled, new settled)
    open: Range  # minutes counted but not final: [new settled, new counted)
    quantiles: Range  # the most recent settled quantile window
    skipped: Range  # minutes never counted and now too old for Cloudflare to serve (a gap)
    abandon_open: bool  # the open minutes are too old to re-query: keep their last seen values
    behind: bool  # cut short by max_duration: another cycle should follow at once

    @property
    def settled(self) -> datetime:
        return self.open.start

    @property
    def counted(self) -> datetime:
        return self.open.end


def plan(now: datetime, settled: datetime, counted: datetime, timing: Timing) -> Plan:
    """The next cycle's ranges for an account whose boundaries stand at settled <= counted."""
    oldest = floor_minute(now - timing.not_older_than) + MINUTE  # a minute of margin for clock skew
    abandon_open = settled < oldest and settled < counted
    if settled < oldest:
        # Open minutes can no longer be re-queried: their last seen values become final, and the
        # minutes never counted before Cloudflare's horizon are a gap.
        settled = counted
    skipped = Range(counted, max(counted, oldest))
    if not skipped.empty:  # only possible when nothing is open
        settled = counted = skipped.end

    target_counted = max(counted, floor_minute(now - timing.delay))
    target_settled = max(settled, floor_minute(now - timing.settle))
    # One query may not span more than max_duration: catch up in steps.
    limit = settled + max(MINUTE, MINUTE * (timing.max_duration // MINUTE))
    new_counted = min(target_counted, limit)
    new_settled = min(target_settled, new_counted)

    q_end = floor_minute(now - timing.settle)
    return Plan(
        settling=Range(settled, new_settled),
        open=Range(new_settled, new_counted),
        quantiles=Range(q_end - timing.quantile_window, q_end),
        skipped=skipped,
        abandon_open=abandon_open,
        behind=target_counted > limit,
    )
