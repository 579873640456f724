"""Windows and ledger, pure logic: no minute gapped, none counted twice, late data absorbed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelbridge.ledger import Ledger
from otelbridge.windows import MINUTE, Range, Timing, floor_minute, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FIELDS = ("requests", "errors")


def world_value(minute: datetime, at: datetime, ingestion: timedelta) -> tuple[int, int]:
    """A toy source: minute m finally holds (m.minute+1)*10 requests, arriving linearly over `ingestion`."""
    final = (minute.minute + 1) * 10
    end = minute + MINUTE
    if at < end:
        return (0, 0)
    if ingestion.total_seconds() == 0 or at >= end + ingestion:
        return (final, final // 10)
    part = (at - end) / ingestion
    return (int(final * part), int(final * part) // 10)


def query(rng: Range, at: datetime, ingestion: timedelta) -> dict[tuple[str, str], tuple[int, int]]:
    total = [0, 0]
    m = rng.start
    while m < rng.end:
        v = world_value(m, at, ingestion)
        total[0] += v[0]
        total[1] += v[1]
        m += MINUTE
    return {("script", "success"): (total[0], total[1])} if any(total) else {}


def expected(
    start: datetime, counted: datetime, settled: datetime, at: datetime, ingestion: timedelta
) -> int:
    out = 0
    m = start
    while m < counted:
        out += world_value(m, at, ingestion)[0]
        m += MINUTE
    return out


def drive(poll_times: list[datetime], timing: Timing, ingestion: timedelta, start: datetime) -> Ledger:
    ledger = Ledger.starting_at(FIELDS, start)
    for now in poll_times:
        p = plan(now, ledger.settled, ledger.counted, timing)
        ledger.apply(p, query(p.settling, now, ingestion), query(p.open, now, ingestion))
        assert ledger.settled <= ledger.counted
    return ledger


def test_floor_minute() -> None:
    assert floor_minute(datetime(2026, 1, 1, 3, 4, 59, 999, tzinfo=UTC)) == datetime(
        2026, 1, 1, 3, 4, tzinfo=UTC
    )


def test_first_plan_counts_back_lookback_and_leaves_young_minutes() -> None:
    timing = Timing(
        delay=timedelta(minutes=3), settle=timedelta(minutes=10), quantile_window=timedelta(minutes=5)
    )
    now = T0 + timedelta(seconds=30)
    start = floor_minute(now) - timedelta(minutes=15)
    p = plan(now, start, start, timing)
    assert p.settling == Range(start, T0 - timedelta(minutes=10))
    assert p.open == Range(T0 - timedelta(minutes=10), T0 - timedelta(minutes=3))
    assert p.quantiles == Range(T0 - timedelta(minutes=15), T0 - timedelta(minutes=10))
    assert p.skipped.empty and not p.behind


def test_settle_before_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        Timing(delay=timedelta(minutes=5), settle=timedelta(minutes=1), quantile_window=MINUTE)


def test_catch_up_is_cut_to_max_duration() -> None:
    timing = Timing(
        delay=MINUTE, settle=MINUTE, quantile_window=MINUTE, max_duration=timedelta(hours=1, seconds=30)
    )
    p = plan(T0 + timedelta(hours=5), T0, T0, timing)
    assert p.settling == Range(T0, T0 + timedelta(hours=1))
    assert p.behind


def test_minutes_older_than_retention_are_a_counted_gap() -> None:
    timing = Timing(delay=MINUTE, settle=MINUTE, quantile_window=MINUTE, not_older_than=timedelta(hours=1))
    now = T0 + timedelta(hours=3)
    p = plan(now, T0, T0, timing)
    assert p.skipped.start == T0
    assert p.skipped.end == floor_minute(now - timedelta(hours=1)) + MINUTE
    ledger = Ledger.starting_at(FIELDS, T0)
    ledger.apply(p, {}, {})
    assert ledger.gap_minutes == p.skipped.minutes == 121  # 10:00 up to 12:01


def test_open_minutes_past_retention_keep_their_last_value() -> None:
    timing = Timing(
        delay=MINUTE, settle=timedelta(minutes=30), quantile_window=MINUTE, not_older_than=timedelta(hours=1)
    )
    ledger = Ledger.starting_at(FIELDS, T0)
    first = plan(T0 + timedelta(minutes=20), ledger.settled, ledger.counted, timing)
    ledger.apply(first, {}, {("s", "success"): (5, 0)})
    later = plan(T0 + timedelta(hours=3), ledger.settled, ledger.counted, timing)
    assert later.abandon_open
    ledger.apply(later, {}, {})
    assert ledger.totals[("s", "success")] == (5, 0)
    assert ledger.final[("s", "success")] == (5, 0)


def test_lower_value_never_lowers_a_counter_and_is_counted() -> None:
    timing = Timing(delay=MINUTE, settle=timedelta(minutes=10), quantile_window=MINUTE)
    ledger = Ledger.starting_at(FIELDS, T0)
    p1 = plan(T0 + timedelta(minutes=5), ledger.settled, ledger.counted, timing)
    ledger.apply(p1, {}, {("s", "success"): (10, 1)})
    p2 = plan(T0 + timedelta(minutes=6), ledger.settled, ledger.counted, timing)
    ledger.apply(p2, {}, {("s", "success"): (8, 1)})
    assert ledger.totals[("s", "success")] == (10, 1)
    assert ledger.corrections == 1


def test_state_round_trip_and_rejects_foreign_fields() -> None:
    ledger = Ledger.starting_at(FIELDS, T0)
    p = plan(
        T0 + timedelta(minutes=20),
        ledger.settled,
        ledger.counted,
        Timing(MINUTE, timedelta(minutes=5), MINUTE),
    )
    ledger.apply(p, {("a", "success"): (3, 0)}, {("odd név.ü", "internalError"): (2.5, 1)})
    again = Ledger.from_json(ledger.to_json(), FIELDS)
    assert again == ledger
    with pytest.raises(ValueError):
        Ledger.from_json(ledger.to_json(), ("requests",))


@settings(max_examples=300, deadline=None)
@given(
    poll_seconds=st.integers(min_value=5, max_value=600),
    delay_min=st.integers(min_value=0, max_value=8),
    extra_settle_min=st.integers(min_value=0, max_value=12),
    ingestion_min=st.integers(min_value=0, max_value=8),
    lookback_min=st.integers(min_value=0, max_value=60),
    jitter=st.lists(st.integers(min_value=0, max_value=59), min_size=1, max_size=50),
    offset=st.integers(min_value=0, max_value=59),
)
def test_no_minute_gapped_or_doubled(
    poll_seconds: int,
    delay_min: int,
    extra_settle_min: int,
    ingestion_min: int,
    lookback_min: int,
    jitter: list[int],
    offset: int,
) -> None:
    ingestion = timedelta(minutes=ingestion_min)
    delay = timedelta(minutes=delay_min)
    settle = max(delay + timedelta(minutes=extra_settle_min), ingestion)  # settle covers ingestion
    timing = Timing(delay=delay, settle=settle, quantile_window=timedelta(minutes=5))
    first = T0 + timedelta(seconds=offset)
    start = floor_minute(first) - timedelta(minutes=lookback_min)
    times = []
    now = first
    for i in range(120):
        times.append(now)
        now += timedelta(seconds=poll_seconds + jitter[i % len(jitter)])
    ledger = drive(times, timing, ingestion, start)
    last = times[-1]
    total = ledger.totals.get(("script", "success"), (0, 0))[0]
    assert total == expected(start, ledger.counted, ledger.settled, last, ingestion)
    assert ledger.counted == max(start, floor_minute(last - delay))
    assert ledger.corrections == 0


def keyed_query(
    rng: Range, at: datetime, ingestion: timedelta, keys: list[tuple[str, ...]], fields: int
) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Series `keys` of any width: series i holds (i + 1) * (field + 1) * the minutes' sum; a series
    with nothing yet in the range has no row, as in Cloudflare's answers."""
    out = {}
    for i, key in enumerate(keys):
        base = sum(world_value(m, at, ingestion)[0] for m in _minutes(rng)) * (i + 1)
        if base:
            out[key] = tuple(base * (f + 1) for f in range(fields))
    return out


def _minutes(rng: Range) -> list[datetime]:
    return [rng.start + MINUTE * k for k in range(int((rng.end - rng.start) / MINUTE))]


@settings(max_examples=100, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=3),
    series=st.integers(min_value=1, max_value=4),
    fields=st.integers(min_value=1, max_value=3),
    poll_seconds=st.integers(min_value=5, max_value=300),
    ingestion_min=st.integers(min_value=0, max_value=6),
    extra_settle_min=st.integers(min_value=0, max_value=6),
    lookback_min=st.integers(min_value=0, max_value=30),
)
def test_any_key_and_vector_shape_is_counted_once_per_series(
    width: int,
    series: int,
    fields: int,
    poll_seconds: int,
    ingestion_min: int,
    extra_settle_min: int,
    lookback_min: int,
) -> None:
    """The engine keys series by dimension tuples of any width and counts any number of fields:
    every series' total is its own minutes, none gapped or doubled."""
    keys = [tuple(f"d{d}-v{i % (d + 2)}-{i}" for d in range(width)) for i in range(series)]
    names = tuple(f"field{f}" for f in range(fields))
    ingestion = timedelta(minutes=ingestion_min)
    timing = Timing(
        delay=MINUTE, settle=MINUTE + timedelta(minutes=extra_settle_min) + ingestion, quantile_window=MINUTE
    )
    start = T0 - timedelta(minutes=lookback_min)
    ledger = Ledger.starting_at(names, start)
    now = T0
    for _ in range(60):
        p = plan(now, ledger.settled, ledger.counted, timing)
        settling = keyed_query(p.settling, now, ingestion, keys, fields)
        ledger.apply(p, settling, keyed_query(p.open, now, ingestion, keys, fields))
        now += timedelta(seconds=poll_seconds)
    counted = Range(start, ledger.counted)
    truth = keyed_query(counted, now - timedelta(seconds=poll_seconds), ingestion, keys, fields)
    assert ledger.totals == truth
    assert ledger.corrections == 0 and ledger.gap_minutes == 0
