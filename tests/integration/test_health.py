"""Every failure shows on /metrics and /status, and a state directory that cannot be written
stops nothing: outputs refresh, the failure is logged once and counted, and the totals are exact
once it heals."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from otelbridge import server
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import SeriesValues, expected_counters, parse_prometheus

Served = Callable[[Bridge], Awaitable[tuple[SeriesValues, dict[str, Any]]]]


@pytest.fixture
async def read_endpoints() -> AsyncIterator[Served]:
    """Serves the bridge over HTTP and reads (otelbridge_* series of /metrics, /status)."""
    runners: list[Any] = []

    async def read(bridge: Bridge) -> tuple[SeriesValues, dict[str, Any]]:
        runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
        runners.append(runner)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                metrics = parse_prometheus(await r.text(), prefix="otelbridge_")
            async with s.get(f"http://127.0.0.1:{port}/status") as r:
                status = json.loads(await r.text())
        return metrics, status

    yield read
    for runner in runners:
        await runner.cleanup()


def workers_counters(bridge: Bridge) -> SeriesValues:
    body = bridge.page.page.body.decode()
    return {k: v for k, v in parse_prometheus(body).items() if k[0].endswith("_total")}


def value(metrics: SeriesValues, name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def blocked_state_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A state_dir under a regular file: unwritable even for root. Deleting the file heals it."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    return blocker, blocker / "state"


async def test_unwritable_state_dir_keeps_outputs_fresh_and_heals_exactly(
    sim: Simulator,
    clock: ManualClock,
    tmp_path: Path,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    read_endpoints: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker, state_dir = blocked_state_dir(tmp_path)
    config = make_config(state_dir=state_dir)
    start = floor_minute(clock.now() - config.lookback)
    bridge = make_bridge(config)
    await bridge.start()
    with caplog.at_level(logging.INFO, logger="otelbridge.state"):
        for cycle in range(1, 4):
            await bridge.poll_once()
            end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
            want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, clock.now())
            assert workers_counters(bridge) == want, f"cycle {cycle}: /metrics was not refreshed"
            metrics, status = await read_endpoints(bridge)
            assert value(metrics, "otelbridge_state_up") == 0
            assert value(metrics, "otelbridge_state_save_failures_total") == cycle
            assert status["state"]["ok"] is False and status["state"]["failures"] == cycle
            assert "NotADirectoryError" in status["state"]["last_error"]
            assert status["ok"] is False
            assert all(a["up"] for a in status["accounts"].values())
            clock.advance(60)
        failing = [r for r in caplog.records if "cannot save state" in r.getMessage()]
        assert len(failing) == 1, "logged when saving starts failing, not every cycle"

        blocker.unlink()
        for _ in range(2):
            await bridge.poll_once()
            clock.advance(60)
        healed = [r for r in caplog.records if "saved to" in r.getMessage() and "again" in r.getMessage()]
        assert len(healed) == 1, "logged once when saving works again"
    metrics, status = await read_endpoints(bridge)
    assert value(metrics, "otelbridge_state_up") == 1
    assert value(metrics, "otelbridge_state_save_failures_total") == 3
    assert status["state"] == {"ok": True, "last_error": None, "failures": 3}
    assert status["ok"] is True

    # A crash now (no close), then a restart from the saved state: nothing lost, nothing doubled.
    clock.advance(5 * 60)
    second = make_bridge(config)
    await second.start()
    await second.poll_once()
    end = next(iter(second.accounts.values())).ledgers[WORKERS].counted
    want = expected_counters(sim.traffic, second.catalogue, second.accounts, start, end, clock.now())
    assert workers_counters(second) == want
    assert sorted(p.name for p in state_dir.iterdir()) == ["instance-id", "state.json"]


async def test_bad_token_with_discovery_shows_on_metrics_and_status(
    sim: Simulator,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    read_endpoints: Served,
) -> None:
    good = make_bridge()
    await good.start()
    await good.poll_once()
    metrics, status = await read_endpoints(good)
    assert value(metrics, "otelbridge_discovery_up") == 1
    assert status["discovery"] == {"ok": True, "last_error": None} and status["ok"] is True

    bad = make_bridge(replace(make_config(), credentials=Credentials(token=Secret("not-the-token"))))
    await bad.start()
    await bad.poll_once()
    metrics, status = await read_endpoints(bad)
    assert value(metrics, "otelbridge_discovery_up") == 0
    assert status["ok"] is False
    assert status["discovery"]["ok"] is False
    assert "AuthenticationFailed" in status["discovery"]["last_error"]


async def test_unreachable_api_shows_on_metrics_and_status(
    sim: Simulator,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    read_endpoints: Served,
) -> None:
    unreachable = f"http://127.0.0.1:{closed_port()}/client/v4"
    discovering = make_bridge(make_config(api_url=unreachable))
    await discovering.start()
    await discovering.poll_once()
    metrics, status = await read_endpoints(discovering)
    assert value(metrics, "otelbridge_discovery_up") == 0
    assert status["ok"] is False and status["discovery"]["ok"] is False
    assert "ConnectionFailed" in status["discovery"]["last_error"]

    tags = tuple(a.tag for a in sim.traffic.accounts)
    configured = make_bridge(make_config(api_url=unreachable, accounts=tags))
    await configured.start()
    await configured.poll_once()
    metrics, status = await read_endpoints(configured)
    assert {t: value(metrics, "otelbridge_up", cloud_account_id=t) for t in tags} == dict.fromkeys(tags, 0)
    assert status["ok"] is False
    assert not any(a["up"] for a in status["accounts"].values())
    assert all("ConnectionFailed" in a["last_error"] for a in status["accounts"].values())
