"""The status page at / as an operator sees it: real Chromium, headless, against a bridge polling the
simulated API, with script names that try to break out of the HTML."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser

import browser
import pytest

from otelbridge import server, statuspage
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.simulator import Simulator, Traffic
from otelbridge.simulator.traffic import Account, Script
from tests.conftest import TOKEN
from tests.datasets import WORKERS, workers

pytestmark = pytest.mark.e2e

HOSTILE_ACCOUNT = "0123456789abcdef" * 2
HOSTILE = {  # name -> invocations per minute
    "say \"hi\" & <b>bold</b> 'quoted'": 900.0,
    "<script>console.error('escaped?')</script>": 500.0,
    "line one\nline two": 300.0,
    "ünïcødé ☃ 日本語 &amp;": 120.0,
}


def hostile_traffic() -> Traffic:
    base = Traffic.default(seed=3)
    scripts = tuple(
        Script(name, hashlib.md5(name.encode()).hexdigest(), "busy", rate) for name, rate in HOSTILE.items()
    )
    zone = hashlib.md5(b"hostile-zone").hexdigest()
    return Traffic(3, [*base.accounts, Account(HOSTILE_ACCOUNT, "Hostile names", scripts, (zone,))])


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[Simulator]:
    """Overrides the shared fixture: the default accounts plus one with hostile script names."""
    simulator = Simulator(traffic=hostile_traffic(), clock=clock)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


class _Page(HTMLParser):
    """The page's visible text and the tags it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def settled_requests_by_script(bridge: Bridge, account: str) -> dict[str, float]:
    index = workers(bridge.catalogue).fields.index("requests")
    out: dict[str, float] = {}
    for (script, _status), vector in bridge.accounts[account].ledgers[WORKERS].final.items():
        out[script] = out.get(script, 0.0) + vector[index]
    return out


async def test_status_page_renders_in_chromium(
    chromium_binary: str, sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    await bridge.start()
    for _ in range(8):
        await bridge.poll_once()
        clock.advance(60)
    await bridge.poll_once()
    runner, port = await server.serve(
        server.app(bridge.page, bridge.status, None, statuspage.for_bridge(bridge)), "127.0.0.1", 0
    )
    url = f"http://127.0.0.1:{port}/"
    shot = browser.test_output_dir() / "status-page.png"
    try:
        started = time.perf_counter()
        dom, console = await browser.dump_dom(chromium_binary, url)
        load_seconds = time.perf_counter() - started
        await browser.screenshot(chromium_binary, url, shot, height=3000)
    finally:
        await runner.cleanup()
    print(f"\nstatus page screenshot: {shot} (DOM {len(dom)} bytes, loaded in {load_seconds:.2f}s)")

    assert console == [], f"the page logged to the console: {console}"
    page = _Page()
    page.feed(dom)
    text = "".join(page.text)
    assert "script" not in page.tags, "a script name became a <script> element"
    assert "b" not in page.tags, "a script name became markup"
    assert "svg" in page.tags and "path" in page.tags
    for tag, state in bridge.accounts.items():
        assert tag in text
        assert state.up
    assert text.count("UP") >= len(bridge.accounts)

    # Every hostile name shows exactly as written, with its exact settled request count.
    settled = settled_requests_by_script(bridge, HOSTILE_ACCOUNT)
    assert set(settled) == set(HOSTILE)
    for name in HOSTILE:
        assert name in text, f"{name!r} is not shown as written"
        assert f"{settled[name]:,.0f}" in text
    busiest = sorted(HOSTILE, key=lambda n: -settled[n])
    positions = [text.index(name) for name in busiest]
    assert positions == sorted(positions), "busiest scripts are not in order of requests"
    assert TOKEN not in dom
