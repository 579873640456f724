"""Log lines an operator reads: one per poll cycle, retries that name the account, and one line
when OTLP exports start failing and one when they recover, instead of the SDK's lines every poll."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import Callable

import pytest
from aiohttp import web

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import MINUTE, floor_minute
from tests.conftest import START
from tests.datasets import WORKERS, workers


def settled_requests(bridge: Bridge) -> float:
    index = workers(bridge.catalogue).fields.index("requests")
    return sum(v[index] for s in bridge.accounts.values() for v in s.ledgers[WORKERS].final.values())


def poll_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("poll: ")]


async def test_one_info_line_per_poll_with_what_it_counted(
    caplog: pytest.LogCaptureFixture, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    caplog.set_level(logging.INFO)
    bridge = make_bridge()
    await bridge.start()
    totals, lags = [], []
    for _ in range(3):
        before = settled_requests(bridge)
        await bridge.poll_once()
        totals.append(settled_requests(bridge) - before)
        lags.append(max(clock.now() - s.ledgers[WORKERS].counted for s in bridge.accounts.values()))
        clock.advance(60)
    lines = poll_lines(caplog)
    assert len(lines) == 3
    accounts = len(bridge.accounts)
    for line, settled, lag in zip(lines, totals, lags, strict=True):
        assert line.startswith(f"poll: {accounts}/{accounts} accounts polled, {accounts} up, ")
        assert f", {settled:.0f} Worker requests settled, " in line
        assert line.endswith(f"s, watermark lag {lag.total_seconds():.0f}s")
    config = bridge.config
    first = (floor_minute(START - config.delay) - floor_minute(START - config.lookback)) // MINUTE
    assert f", {first * accounts} minutes counted, " in lines[0]
    assert f", {accounts} minutes counted, " in lines[1]


async def test_retries_name_the_account(
    caplog: pytest.LogCaptureFixture, sim: Simulator, make_bridge: Callable[..., Bridge]
) -> None:
    caplog.set_level(logging.INFO)
    bridge = make_bridge()
    await bridge.start()
    sim.knobs.server_error_probability = 1.0
    await bridge.poll_once()
    retries = [r.getMessage() for r in caplog.records if "retry 1 of 2" in r.getMessage()]
    assert sorted(line.split(":")[0] for line in retries) == sorted(f"account {a}" for a in bridge.accounts)


async def test_a_failed_poll_settles_nothing_again(
    caplog: pytest.LogCaptureFixture, sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    caplog.set_level(logging.INFO)
    bridge = make_bridge()
    await bridge.start()
    await bridge.poll_once()
    points = {a: len(bridge.history.points(a)) for a in bridge.accounts}
    clock.advance(60)
    sim.knobs.server_error_probability = 1.0
    await bridge.poll_once()
    first, failed = poll_lines(caplog)
    assert ", 0 Worker requests settled, " not in first
    assert ", 0 up, " in failed and ", 0 Worker requests settled, " in failed
    assert {a: len(bridge.history.points(a)) for a in bridge.accounts} == points


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def otlp_sink(port: int) -> web.AppRunner:
    """Accepts OTLP/HTTP metric exports (an empty protobuf answer is a full success)."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/metrics", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def exports_done(bridge: Bridge, count: int) -> None:
    for _ in range(200):
        if sum(bridge.outcomes_otlp.values()) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {dict(bridge.outcomes_otlp)} exports after waiting")


async def test_collector_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")  # room for one retry, whose warning says why
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()  # the log as an operator reads it (pytest's own capture sees more)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    port = free_port()  # nothing listens there yet: the Collector is down
    bridge = make_bridge(make_config(otlp_endpoint=f"http://127.0.0.1:{port}"))
    await bridge.start()
    for i in range(2):
        await bridge.poll_once()
        await exports_done(bridge, i + 1)
        clock.advance(60)
    sink = await otlp_sink(port)
    try:
        await bridge.poll_once()
        await exports_done(bridge, 3)
    finally:
        await sink.cleanup()
        logging.getLogger().removeHandler(handler)

    assert dict(bridge.outcomes_otlp) == {"failure": 2, "success": 1}, "failures are still counted"
    seen = [line.split(" ", 1) for line in stream.getvalue().splitlines()]  # what reaches the log
    assert not [name for name, _ in seen if name.startswith("opentelemetry")], "no SDK lines in the log"
    ours = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "otelbridge.otlp"]
    assert [message for name, message in seen if name == "otelbridge.otlp"] == [m for _, m in ours]
    assert len(ours) == 2
    assert ours[0][0] == "WARNING"
    assert ours[0][1].startswith(f"OTLP exports to http://127.0.0.1:{port}/v1/metrics are failing (")
    assert "Connection refused" in ours[0][1], "the exporter's first complaint says why"
    assert ours[1] == (
        "INFO",
        f"OTLP exports to http://127.0.0.1:{port}/v1/metrics recovered after 2 failed export(s)",
    )
