"""Fixtures: a simulator on a real port, driven by a manual clock, queried with a real gql client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from otelbridge.clock import ManualClock
from otelbridge.simulator import Simulator, Traffic
from tests.simulator.sim_support import NOW, Api


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic.default(seed=1)


@pytest.fixture
async def sim(traffic: Traffic, clock: ManualClock) -> AsyncIterator[Simulator]:
    async with Simulator(traffic=traffic, clock=clock) as running:
        yield running


@pytest.fixture
def api(sim: Simulator) -> Api:
    return Api(sim)


@pytest.fixture
def account(traffic: Traffic) -> str:
    return traffic.accounts[0].tag
