"""The status page's history stays small whatever runs through it, and the page escapes and stays
quick at a thousand scripts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from otelbridge import history, statuspage
from otelbridge.history import History
from otelbridge.windows import Range

FIELDS = ("requests", "errors", "subrequests")
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def rows(scripts: int, minute: int) -> dict[tuple[str, str], tuple[float, ...]]:
    out: dict[tuple[str, str], tuple[float, ...]] = {}
    for s in range(scripts):
        out[(f"worker-{s:05d}", "success")] = (float(s + minute), 0.0, 1.0)
        out[(f"worker-{s:05d}", "scriptThrewException")] = (1.0, 1.0, 0.0)
    return out


def minute(i: int) -> Range:
    return Range(START + timedelta(minutes=i), START + timedelta(minutes=i + 1))


def test_history_is_bounded_by_time_points_and_scripts() -> None:
    h = History(FIELDS)
    for i in range(3 * 60):  # three hours of one-minute polls, 200 scripts each
        settled = h.record("acct", minute(i), rows(200, i))
        assert settled == sum(s + i + 1 for s in range(200))
    points = h.points("acct")
    assert len(points) == 60, "only the last hour is kept"
    assert points[-1].end - points[0].start == timedelta(hours=1)
    assert all(len(p.scripts) == history.TOP_PER_POINT for p in points)
    for _ in range(history.MAX_POINTS * 2):  # many polls inside one minute each: capped by count
        h.record("fast", Range(START, START + timedelta(minutes=1)), rows(3, 0))
    assert len(h.points("fast")) == history.MAX_POINTS


def test_busiest_scripts_sum_requests_and_errors_over_the_hour() -> None:
    h = History(FIELDS)
    for i in range(10):
        h.record("acct", minute(i), rows(50, i))
    top = h.busiest("acct", 3)
    assert [b.script for b in top] == ["worker-00049", "worker-00048", "worker-00047"]
    assert top[0].requests == sum(49 + i + 1 for i in range(10))
    assert top[0].errors == 10
    assert h.record("acct", Range(START, START), rows(5, 0)) == 0.0, "an empty range is not a point"


def status_for(accounts: list[str]) -> dict[str, object]:
    account = {
        "up": True,
        "settled": START.isoformat(),
        "counted": START.isoformat(),
        "series": 2000,
        "failures": 0,
        "last_error": 'HTTP 500 from POST https://x/graphql <"&>',
        "gap_minutes": 0,
    }
    return {"api_url": "https://api.example/client/v4", "accounts": dict.fromkeys(accounts, account)}


def test_page_escapes_text_from_outside_and_renders_quickly_at_a_thousand_scripts() -> None:
    h = History(FIELDS)
    for i in range(60):
        h.record("acct", minute(i), rows(1000, i))
    h.record("acct", minute(60), {('a<b>"c"&\x00\n', "success"): (1e9, 1.0, 0.0)})
    started = time.perf_counter()
    page = statuspage.render(status_for(["acct"]), h, 300, START + timedelta(minutes=62))
    seconds = time.perf_counter() - started
    print(f"\nstatus page at 1,000 scripts: {len(page.encode())} bytes, rendered in {seconds * 1000:.1f} ms")
    assert "a&lt;b&gt;&quot;c&quot;&amp;\ufffd\n" in page
    assert "<b>" not in page and "\x00" not in page
    assert "&lt;&quot;&amp;&gt;" in page, "the error message is escaped too"
    assert page.count("<tr>") == statuspage.TOP_SCRIPTS + 1  # header row + top scripts
    assert seconds < 0.5
