"""Shared fixtures: a simulated Cloudflare API on a real port, a controlled clock, and a bridge factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.catalogue import DatasetChoice, load
from otelbridge.clock import ManualClock
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.config import Config
from otelbridge.poller import RetryPolicy
from otelbridge.simulator import Simulator, Traffic

START = datetime(2026, 11, 26, 9, 0, 30, tzinfo=UTC)
WITHOUT_ZONES = tuple((d.dataset, DatasetChoice(enabled=False)) for d in load().datasets if d.scope == "zone")
TOKEN = "sim-token"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(traffic=Traffic.default(seed=7), clock=clock)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def make_config(sim: Simulator, tmp_path: Path) -> Callable[..., Config]:
    def make(**overrides: Any) -> Config:
        base = Config(
            credentials=Credentials(token=Secret(TOKEN)),
            api_url=sim.base_url,
            poll_interval=timedelta(seconds=60),
            delay=timedelta(minutes=1),
            settle=timedelta(minutes=5),
            lookback=timedelta(minutes=10),
            quantile_window=timedelta(minutes=5),
            prometheus_port=0,
            prometheus_host="127.0.0.1",
            state_dir=tmp_path / "state",
            request_timeout=timedelta(seconds=5),
            profile="full",  # every metric and attribute, so exactness covers all of them
            # Zone datasets are off unless a test turns them on (`datasets=()`): the request and
            # call counts other tests assert are those of the account datasets.
            datasets=WITHOUT_ZONES,
        )
        return replace(base, **overrides)

    return make


@pytest.fixture
async def make_bridge(
    make_config: Callable[..., Config], clock: ManualClock
) -> AsyncIterator[Callable[..., Bridge]]:
    made: list[Bridge] = []

    def make(config: Config | None = None, **kwargs: Any) -> Bridge:
        kwargs.setdefault("retry", RetryPolicy(attempts=3, backoff=0.0))
        kwargs.setdefault("sleep", _no_sleep)
        bridge = Bridge(config or make_config(), clock, **kwargs)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        await bridge.close()
