"""The engine is dataset-generic: a second dataset catalogue, defined only here, is counted through
the same single request per account, and a state file of the one-dataset format resumes exactly."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from otelbridge.bridge import Bridge
from otelbridge.catalogue import combine, load, parse_dataset
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import OPEN, WORKERS, workers
from tests.metrics_text import expected_counters, parse_prometheus
from tests.tamper import TamperProxy, settings_node

# Requests per script: the Workers node again, grouped by scriptName only, under its own aliases.
TINY = """
dataset: tinyScripts
node: workersInvocationsAdaptive
scope: account
time_filter: datetime
dimensions:
  - {attribute: faas.name, field: scriptName, description: the script}
counter_key: [faas.name]
page_key: faas.name
counters:
  - name: test.tiny.requests
    source: sum.requests
    type: integer
    unit: "{request}"
    description: Invocations per script.
"""
TINY_TOTAL = "test_tiny_requests_total"


def counters(bridge: Bridge, prefix: str = "cloudflare_workers_") -> dict[Any, float]:
    page = parse_prometheus(bridge.page.page.body.decode(), prefix)
    return {k: v for k, v in page.items() if k[0].endswith("_total")}


async def test_a_second_dataset_is_counted_through_the_same_request(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 120
    base = load()
    catalogue = combine((workers(base), parse_dataset(TINY, "tinyScripts.yaml")), base.self_metrics)
    bridge = make_bridge(catalogue=catalogue)
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.poll_once()  # the first cycle also reads the datasets' settings
    for _ in range(6):
        clock.advance(60)
        sim.reset_log()
        await bridge.poll_once()
        graphql = [e for e in sim.query_log if e.endpoint == "graphql"]
        assert sorted(e.account_tags for e in graphql) == sorted((a,) for a in bridge.accounts)
        assert all({OPEN, "tinyScripts_open"} <= set(e.datasets) for e in graphql)
    now = clock.now()
    end = next(iter(bridge.accounts.values())).ledgers["tinyScripts"].counted
    assert all(s.ledgers[WORKERS].counted == end for s in bridge.accounts.values())

    want: dict[Any, float] = defaultdict(int)
    for account in bridge.accounts:
        for (script, _), sums in sim.traffic.series_totals(account, start, end, as_of=now).items():
            labels = (("cloud_account_id", account), ("faas_name", script))
            want[(TINY_TOTAL, labels)] += sums["requests"]
    assert len(want) >= 5
    assert counters(bridge, "test_tiny_") == want
    # The Workers dataset beside it is unchanged.
    workers_want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=now)
    assert counters(bridge) == workers_want


async def test_a_state_file_of_the_one_dataset_format_resumes_exactly(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 180
    config = make_config()
    assert config.state_dir is not None
    start = floor_minute(clock.now() - config.lookback)
    first = make_bridge(config)
    await first.start()
    for _ in range(7):
        await first.poll_once()
        clock.advance(60)
    # Rewrite the state as format 1 held it: one ledger per account, rows [script, status, values].
    path = config.state_dir / "state.json"
    saved = json.loads(path.read_text())
    ledgers = {account: by_dataset[WORKERS] for account, by_dataset in saved["accounts"].items()}
    assert all(len(row) == 3 for ledger in ledgers.values() for row in ledger["totals"])
    old = {"format": 1, "api_url": saved["api_url"], "saved_at": saved["saved_at"], "accounts": ledgers}
    path.write_text(json.dumps(old))

    clock.advance(13 * 60)
    second = make_bridge(config)
    await second.start()
    assert not list(config.state_dir.glob("state.json.bad-*")), "the old file is read, not set aside"
    assert {a: s.ledgers[WORKERS].counted for a, s in second.accounts.items()} == {
        a: s.ledgers[WORKERS].counted for a, s in first.accounts.items()
    }
    await second.poll_once()
    end = next(iter(second.accounts.values())).ledgers[WORKERS].counted
    want = expected_counters(sim.traffic, second.catalogue, second.accounts, start, end, as_of=clock.now())
    assert counters(second) == want
    assert json.loads(path.read_text())["format"] == 2


async def test_an_account_with_no_dataset_enabled_is_down_and_asked_again(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    def disabled(body: Any) -> Any:
        node = settings_node(body)
        assert node is not None
        for limits in node.values():
            limits["enabled"] = False
        return body

    proxy = TamperProxy(sim.base_url)
    await proxy.start()
    try:
        proxy.rewrite_settings = disabled
        bridge = make_bridge(make_config(api_url=proxy.base_url))
        await bridge.start()
        start = floor_minute(clock.now() - bridge.config.lookback)
        await bridge.poll_once()
        assert all("not enabled" in s.last_error and not s.up for s in bridge.accounts.values())
        proxy.rewrite_settings = None
        clock.advance(60)
        await bridge.poll_once()  # the settings are read again, and counting starts
        assert all(s.up for s in bridge.accounts.values())
        end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
        want = expected_counters(
            sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now()
        )
        assert len(want) > 10 and counters(bridge) == want
    finally:
        await proxy.stop()
