"""The Cloudflare client over real HTTP: local validation, paging of full pages, settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from graphql import parse

from otelbridge.catalogue import load
from otelbridge.clock import ManualClock
from otelbridge.cloudflare.client import CloudflareClient
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.cloudflare.errors import QueryRejected
from otelbridge.cloudflare.queries import AliasRequest, Shape
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS, workers


def client(sim: Simulator) -> CloudflareClient:
    return CloudflareClient(sim.base_url, Credentials(token=Secret("sim-token")), load().default_quantiles)


async def test_invalid_query_is_refused_locally_and_never_sent(sim: Simulator) -> None:
    async with client(sim) as c:
        bad = parse('query { viewer { accounts(filter: {accountTag: "x"}) { noSuchDataset { a } } } }')
        with pytest.raises(QueryRejected, match="local validation"):
            await c._execute(bad, {})
    assert sim.query_log == []


async def test_each_document_is_validated_once(sim: Simulator, clock: ManualClock) -> None:
    account = sim.traffic.accounts[0].tag
    end = floor_minute(clock.now())
    requests = (AliasRequest(workers(), "open", Shape.SUMS, end - timedelta(minutes=5), end),)
    async with client(sim) as c:
        for _ in range(3):
            await c.fetch(account, requests, {WORKERS: 10_000})
        assert c._gql is not None and len(c._gql._validated) == 1
    assert len(sim.query_log) == 3


async def test_full_pages_are_followed_by_script_name(sim: Simulator, clock: ManualClock) -> None:
    account = sim.traffic.accounts[0].tag
    end = floor_minute(clock.now())
    start = end - timedelta(minutes=30)
    want = sim.traffic.series_totals(account, start, end)
    assert len(want) > 12
    dataset = workers(load().select())  # grouped as exported by default
    requests = (AliasRequest(dataset, "open", Shape.SUMS, start, end),)
    async with client(sim) as c:
        answer = await c.fetch(account, requests, {WORKERS: 7})  # a tiny page: many follow-up requests
    fields = [counter.field for counter in dataset.counters]
    rows = answer.sums[f"{WORKERS}_open"]
    got = {key: dict(zip(fields, vector, strict=True)) for key, vector in rows.items()}
    assert got == want
    assert answer.requests > 2


async def test_settings_are_read(sim: Simulator) -> None:
    sim.knobs.not_older_than = 86_400
    async with client(sim) as c:
        limits = (await c.settings(sim.traffic.accounts[0].tag, (workers(),)))[WORKERS]
    assert limits.not_older_than == 86_400 and limits.max_page_size == 10_000
