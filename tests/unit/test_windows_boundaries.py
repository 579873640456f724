"""windows.plan at its edges: Cloudflare's retention horizon, max_duration, empty ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from otelbridge.windows import MINUTE, Range, Timing, floor_minute, plan

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
# One hour of retention: the oldest minute Cloudflare still serves (with a minute of margin).
RETAINED = Timing(delay=MINUTE, settle=timedelta(minutes=10), quantile_window=MINUTE, not_older_than=HOUR)
OLDEST = floor_minute(NOW - HOUR) + MINUTE


def test_a_range_cannot_end_before_it_starts() -> None:
    assert Range(OLDEST, OLDEST).empty and Range(OLDEST, OLDEST).minutes == 0
    assert Range(OLDEST, OLDEST + 3 * MINUTE).minutes == 3
    with pytest.raises(ValueError, match="ends before it starts"):
        Range(OLDEST + MINUTE, OLDEST)


def test_open_minutes_at_the_horizon_are_still_requeried() -> None:
    """settled == the oldest servable minute: nothing is abandoned, the open range is asked again."""
    counted = OLDEST + 20 * MINUTE
    p = plan(NOW, OLDEST, counted, RETAINED)
    assert not p.abandon_open and p.skipped.empty
    assert p.settling.start == OLDEST
    assert p.settling.end == floor_minute(NOW - RETAINED.settle)
    assert p.counted == floor_minute(NOW - RETAINED.delay)


def test_open_minutes_past_the_horizon_are_abandoned_not_requested() -> None:
    settled, counted = OLDEST - MINUTE, OLDEST + 20 * MINUTE
    p = plan(NOW, settled, counted, RETAINED)
    assert p.abandon_open and p.skipped.empty
    assert p.settling == Range(counted, floor_minute(NOW - RETAINED.settle)), "asks from counted on"


def test_nothing_open_means_nothing_to_abandon() -> None:
    p = plan(NOW, OLDEST - 5 * MINUTE, OLDEST - 5 * MINUTE, RETAINED)
    assert not p.abandon_open
    assert p.skipped == Range(OLDEST - 5 * MINUTE, OLDEST)
    assert p.settling.start == OLDEST, "the gap is not asked for"


def test_still_open_minutes_within_retention_are_requeried() -> None:
    settled, counted = NOW.replace(second=0) - 30 * MINUTE, NOW.replace(second=0) - 5 * MINUTE
    p = plan(NOW, settled, counted, RETAINED)
    assert p.settling == Range(settled, floor_minute(NOW - RETAINED.settle))
    assert p.open == Range(floor_minute(NOW - RETAINED.settle), floor_minute(NOW - RETAINED.delay))
    assert not p.abandon_open and p.skipped.empty and not p.behind


@pytest.mark.parametrize(("hours_behind", "behind"), [(2, False), (3, True)])
def test_behind_only_when_more_than_max_duration_is_left(hours_behind: int, behind: bool) -> None:
    timing = Timing(delay=0 * MINUTE, settle=0 * MINUTE, quantile_window=MINUTE, max_duration=2 * HOUR)
    start = floor_minute(NOW) - hours_behind * HOUR
    p = plan(NOW, start, start, timing)
    assert p.settling == Range(start, start + 2 * HOUR)
    assert p.behind is behind
