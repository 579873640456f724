"""Idle series: forgotten idle_series_ttl after their last rows (by the watermark), never while open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from otelbridge.config import ConfigError, load
from otelbridge.ledger import Ledger, Rows
from otelbridge.windows import MINUTE, Timing, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FIELDS = ("requests",)
TIMING = Timing(delay=MINUTE, settle=timedelta(minutes=5), quantile_window=MINUTE)
TTL = timedelta(minutes=30)


def cycle(ledger: Ledger, minute: int, settling: Rows, open_rows: Rows) -> None:
    p = plan(T0 + timedelta(minutes=minute), ledger.settled, ledger.counted, TIMING)
    ledger.apply(p, settling, open_rows)


def test_a_series_is_forgotten_ttl_after_its_last_rows_and_restarts_from_zero() -> None:
    ledger = Ledger.starting_at(FIELDS, T0)
    ledger.idle_ttl = TTL
    key = ("gone", "success")
    cycle(ledger, 10, {key: (4,)}, {key: (1,)})  # last rows: watermark 10:09
    last_seen = ledger.counted
    minute = 11
    while T0 + timedelta(minutes=minute) - MINUTE < last_seen + TTL:
        cycle(ledger, minute, {}, {})
        assert ledger.totals[key] == (5,), minute  # idle, still exported with its value
        minute += 1
    cycle(ledger, minute, {}, {})
    assert key not in ledger.totals and key not in ledger.final and ledger.forgotten == 1
    cycle(ledger, minute + 1, {key: (2,)}, {})
    assert ledger.totals[key] == (2,)  # a reset: the new minutes only


def test_a_series_with_open_rows_is_never_forgotten() -> None:
    ledger = Ledger.starting_at(FIELDS, T0)
    ledger.idle_ttl = TTL
    key = ("slow", "success")
    cycle(ledger, 10, {}, {key: (1,)})
    ledger.seen[key] = T0 - timedelta(days=2)  # as if its last rows were long ago
    cycle(ledger, 11, {}, {key: (1,)})  # still in the open answer: seen again, kept
    assert ledger.totals[key] == (1,)
    ledger.seen[key] = T0 - timedelta(days=2)
    ledger.open[key] = (1,)
    ledger._forget_idle()
    assert key in ledger.totals  # open minutes hold it


def test_last_seen_survives_a_restart_and_older_files_count_as_seen_now() -> None:
    ledger = Ledger.starting_at(FIELDS, T0)
    cycle(ledger, 10, {("a", "success"): (1,)}, {})
    cycle(ledger, 20, {("b", "success"): (1,)}, {})
    document = ledger.to_json()
    # State files hold Unix minutes, so files written by any version read the same.
    unix_minutes = {key: int(when.timestamp()) // 60 for key, when in ledger.seen.items()}
    assert {(s, st): m for s, st, m in document["seen"]} == unix_minutes
    assert all(type(m) is int for _, _, m in document["seen"])  # whole minutes
    assert Ledger.from_json(document, FIELDS).seen == ledger.seen
    del document["seen"]
    assert set(Ledger.from_json(document, FIELDS).seen.values()) == {ledger.counted}


def test_idle_series_ttl_is_configured_and_checked() -> None:
    assert load(environ={}).idle_series_ttl == timedelta(hours=48)
    assert load(environ={"OTELBRIDGE_IDLE_SERIES_TTL": "0"}).idle_series_ttl == timedelta(0)
    with pytest.raises(ConfigError, match="idle_series_ttl"):
        load(environ={"OTELBRIDGE_IDLE_SERIES_TTL": "2m", "OTELBRIDGE_SETTLE": "10m"})
