"""Restart without loss: state is saved every cycle, a new process continues the totals exactly."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, parse_prometheus


def counters(bridge: Bridge) -> dict[Any, float]:
    return {
        k: v for k, v in parse_prometheus(bridge.page.page.body.decode()).items() if k[0].endswith("_total")
    }


async def test_restart_continues_exactly_after_a_crash_and_downtime(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 180
    config = make_config()
    start = floor_minute(clock.now() - config.lookback)
    first = make_bridge(config)
    await first.start()
    for _ in range(7):
        await first.poll_once()
        clock.advance(60)
    # The first process dies without closing (as with kill -9); 13 minutes pass before the next starts.
    clock.advance(13 * 60)
    second = make_bridge(config)
    await second.start()
    assert {a: s.ledgers[WORKERS].counted for a, s in second.accounts.items()} == {
        a: s.ledgers[WORKERS].counted for a, s in first.accounts.items()
    }
    await second.poll_once()
    end = next(iter(second.accounts.values())).ledgers[WORKERS].counted
    assert end == floor_minute(clock.now() - config.delay)
    want = expected_counters(sim.traffic, second.catalogue, second.accounts, start, end, as_of=clock.now())
    assert counters(second) == want


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 99, "accounts": {}}),
        json.dumps([1, 2, 3]),
        "",
    ],
    ids=["truncated", "unknown format", "not an object", "empty"],
)
async def test_unusable_state_is_set_aside_and_counting_starts_fresh(
    content: str,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config()
    assert config.state_dir is not None
    config.state_dir.mkdir(parents=True)
    (config.state_dir / "state.json").write_text(content, encoding="utf-8")
    bridge = make_bridge(config)
    with caplog.at_level(logging.ERROR):
        await bridge.start()
    assert "moved it to" in caplog.text
    assert list(config.state_dir.glob("state.json.bad-*"))
    await bridge.poll_once()
    assert all(s.up for s in bridge.accounts.values())
    assert (config.state_dir / "state.json").exists()


async def test_state_of_another_api_is_not_used(
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config()
    bridge = make_bridge(config)
    await bridge.start()
    await bridge.poll_once()
    other = make_bridge(make_config(api_url="http://127.0.0.1:1/client/v4", accounts=tuple(bridge.accounts)))
    with caplog.at_level(logging.ERROR):
        await other.start()
    assert "belongs to API" in caplog.text


async def test_state_file_holds_every_account_and_nothing_else(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    config = make_config()
    bridge = make_bridge(config)
    await bridge.start()
    await bridge.poll_once()
    assert config.state_dir is not None
    files = sorted(p.name for p in Path(config.state_dir).iterdir())
    assert files == ["instance-id", "state.json"], (
        "no temporary files are left behind (atomicity: tests/unit/test_state.py)"
    )
    saved = json.loads((config.state_dir / "state.json").read_text())
    assert set(saved["accounts"]) == set(bridge.accounts)
    assert "sim-token" not in (config.state_dir / "state.json").read_text()


async def test_outage_is_caught_up_in_one_request_per_account(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    config = make_config()
    start = floor_minute(clock.now() - config.lookback)
    bridge = make_bridge(config)
    await bridge.start()
    await bridge.poll_once()
    sim.fail_next("server_error", count=10_000)
    for _ in range(45):  # 45 minutes of a failing API
        clock.advance(60)
        await bridge.poll_once()
    assert not any(s.up for s in bridge.accounts.values())
    sim.clear_faults()
    clock.advance(60)
    sim.reset_log()
    await bridge.poll_once()
    assert len([e for e in sim.query_log if e.endpoint == "graphql"]) == len(bridge.accounts)
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    assert counters(bridge) == want
    assert end == floor_minute(clock.now() - timedelta(minutes=1))
