"""Bad answers from Cloudflare: each is logged and counted, the last good data keeps being served,
and the next good answer brings the totals back to exactly Cloudflare's (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import GAUGES, OPEN, SETTLING, WORKERS
from tests.metrics_text import expected_counters, parse_prometheus
from tests.tamper import TamperProxy, workers_node


@pytest.fixture
async def proxy(sim: Simulator) -> AsyncIterator[TamperProxy]:
    p = TamperProxy(sim.base_url)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def proxied(
    proxy: TamperProxy, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> Bridge:
    """A bridge that talks to the simulated API through the tampering proxy."""
    return make_bridge(make_config(api_url=proxy.base_url))


def counters(bridge: Bridge) -> dict[Any, float]:
    return {
        k: v for k, v in parse_prometheus(bridge.page.page.body.decode()).items() if k[0].endswith("_total")
    }


def up(bridge: Bridge) -> dict[str, bool]:
    return {a: s.up for a, s in bridge.accounts.items()}


def first_row(body: Any, alias: str = OPEN) -> dict[str, Any]:
    node = workers_node(body)
    assert node is not None and node[alias], "the answer should have rows to spoil"
    row: dict[str, Any] = node[alias][0]
    return row


def set_sum(field: str, value: Any) -> Callable[[Any], Any]:
    def spoil(body: Any) -> Any:
        first_row(body)["sum"][field] = value
        return body

    return spoil


def duplicate_row(body: Any) -> Any:
    node = workers_node(body)
    assert node is not None
    node[OPEN].append(dict(node[OPEN][0]))
    return body


def drop_dimensions(body: Any) -> Any:
    del first_row(body)["dimensions"]
    return body


def drop_sum(body: Any) -> Any:
    first_row(body)["sum"] = None
    return body


def rows_not_a_list(body: Any) -> Any:
    node = workers_node(body)
    assert node is not None
    node[OPEN] = {"rows": node[OPEN]}
    return body


def null_quantile(body: Any) -> Any:
    first_row(body, GAUGES)["quantiles"]["cpuTimeP99"] = None
    return body


def no_account_node(body: Any) -> Any:
    body["data"]["viewer"]["accounts"] = []
    return body


def missing_alias(body: Any) -> Any:
    node = workers_node(body)
    assert node is not None
    del node[OPEN]
    return body


def script_name_number(body: Any) -> Any:
    first_row(body)["dimensions"]["scriptName"] = 42
    return body


SPOILERS: dict[str, Callable[[Any], Any]] = {
    "string instead of a number": set_sum("requests", "12"),
    "negative count": set_sum("requests", -5),
    "float for a uint64 field": set_sum("requests", 1.5),
    "boolean instead of a number": set_sum("errors", True),
    "null sum value": set_sum("cpuTimeUs", None),
    "infinite float": set_sum("duration", math.inf),
    "duplicate group rows": duplicate_row,
    "row without dimensions": drop_dimensions,
    "row without sum": drop_sum,
    "rows not a list": rows_not_a_list,
    "null quantile": null_quantile,
    "alias missing": missing_alias,
    "script name of the wrong type": script_name_number,
    "account node missing": no_account_node,
}


async def _good_then(bridge: Bridge, clock: ManualClock) -> dict[Any, float]:
    await bridge.start()
    await bridge.poll_once()
    before = counters(bridge)
    assert before and all(up(bridge).values())
    clock.advance(60)
    return before


async def _recovers_exactly(bridge: Bridge, sim: Simulator, clock: ManualClock, start: Any) -> None:
    clock.advance(60)
    await bridge.poll_once()
    assert all(up(bridge).values())
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    assert end == floor_minute(clock.now() - bridge.config.delay)
    want = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    assert counters(bridge) == want


@pytest.mark.parametrize("case", sorted(SPOILERS))
async def test_spoiled_answer_is_refused_and_recovered(
    case: str, sim: Simulator, clock: ManualClock, proxy: TamperProxy, proxied: Bridge
) -> None:
    bridge = proxied
    start = floor_minute(clock.now() - bridge.config.lookback)
    before = await _good_then(bridge, clock)
    proxy.rewrite = SPOILERS[case]
    await bridge.poll_once()
    assert not any(up(bridge).values())
    assert counters(bridge) == before, "a refused answer must not touch the totals"
    assert sum(v for k, v in bridge.outcomes.items() if k not in ("ok",)) >= 3
    proxy.rewrite = None
    await _recovers_exactly(bridge, sim, clock, start)


async def test_nan_in_an_answer_is_refused(
    sim: Simulator, clock: ManualClock, proxy: TamperProxy, proxied: Bridge
) -> None:
    bridge = proxied
    start = floor_minute(clock.now() - bridge.config.lookback)
    before = await _good_then(bridge, clock)

    def with_nan(body: Any) -> Any:
        # JSON has no NaN, but Python's and many servers' encoders write it: put it on the wire raw.
        set_sum("duration", 0.5)(body)
        proxy.raw_text = json.dumps(body).replace('"duration": 0.5', '"duration": NaN', 1)
        return body

    proxy.rewrite = with_nan
    await bridge.poll_once()
    assert "NaN" in (proxy.raw_text or "")
    assert not any(up(bridge).values())
    assert counters(bridge) == before
    proxy.rewrite, proxy.raw_text = None, None
    await _recovers_exactly(bridge, sim, clock, start)


async def test_unknown_extra_fields_are_ignored(
    sim: Simulator, clock: ManualClock, proxy: TamperProxy, proxied: Bridge
) -> None:
    bridge = proxied
    start = floor_minute(clock.now() - bridge.config.lookback)
    await _good_then(bridge, clock)

    def extra(body: Any) -> Any:
        first_row(body)["sum"]["somethingNew"] = 1
        body["extensions"] = {"cost": 1}
        return body

    proxy.rewrite = extra
    await _recovers_exactly(bridge, sim, clock, start)


FAULTS = ["server_error", "html", "malformed", "reset", "data_null", "budget"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_transport_and_api_faults_keep_last_good_data(
    fault: str, sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge()
    start = floor_minute(clock.now() - bridge.config.lookback)
    before = await _good_then(bridge, clock)
    sim.fail_next(fault, count=100)  # type: ignore[arg-type]
    await bridge.poll_once()
    assert not any(up(bridge).values())
    assert counters(bridge) == before
    expected_outcome = {
        "server_error": "server_error",
        "html": "malformed",
        "malformed": "malformed",
        "reset": "connection",
        "data_null": "server_error",
        "budget": "rate_limited",
    }[fault]
    assert bridge.outcomes[expected_outcome] >= 1
    sim.clear_faults()
    if fault == "budget":
        clock.advance(300)  # Cloudflare asks to wait five minutes
    await _recovers_exactly(bridge, sim, clock, start)


async def test_budget_error_with_http_429_is_recognised(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.rate_limit_http_status = 429
    bridge = make_bridge()
    await _good_then(bridge, clock)
    sim.fail_next("budget")
    sim.reset_log()
    await bridge.poll_once()
    assert bridge.outcomes["rate_limited"] == 1
    # Not retried within the cycle: one request per account at most, and only one budget error.
    assert len([e for e in sim.query_log if e.outcome == "budget"]) == 1
    assert bridge.budget.wait() > 0


async def test_timeout_is_retried_and_counted(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(request_timeout=timedelta(seconds=0.3)))
    before = await _good_then(bridge, clock)
    sim.knobs.latency = 0.6
    await bridge.poll_once()
    assert bridge.outcomes["timeout"] >= 3
    assert counters(bridge) == before
    sim.knobs.latency = 0


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


async def test_unreachable_api_serves_nothing_false_and_keeps_trying(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(api_url=f"http://127.0.0.1:{closed_port()}/client/v4"))
    await bridge.start()
    assert "ConnectionFailed" in bridge.discovery_error
    await bridge.poll_once()
    assert bridge.outcomes["connection"] >= 2
    assert not bridge.accounts


async def test_tls_failure_is_reported_as_such(
    sim: Simulator, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(api_url=sim.base_url.replace("http://", "https://")))
    await bridge.start()
    assert "TLS" in bridge.discovery_error or "ConnectionFailed" in bridge.discovery_error


async def test_wrong_token_is_an_authentication_failure(
    sim: Simulator, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    from otelbridge.cloudflare.credentials import Credentials, Secret

    config = make_config()
    bridge = make_bridge(replace(config, credentials=Credentials(token=Secret("not-the-token"))))
    await bridge.start()
    assert "AuthenticationFailed" in bridge.discovery_error
    assert bridge.outcomes["auth"] == 1


async def test_account_without_access_is_down_and_others_keep_going(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    foreign = "0" * 32
    tags = (*[a.tag for a in sim.traffic.accounts], foreign)
    bridge = make_bridge(make_config(accounts=tags))
    await bridge.start()
    await bridge.poll_once()
    assert up(bridge)[foreign] is False
    assert sum(up(bridge).values()) == 3
    assert bridge.outcomes["authz"] >= 1
    assert "NotAuthorized" in bridge.accounts[foreign].last_error


async def test_script_name_with_quotes_backslashes_and_newlines_is_exported_intact(
    sim: Simulator,
    clock: ManualClock,
    proxy: TamperProxy,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
) -> None:
    odd = 'we"ird\\name\nwith {braces}, commas= and ünïcode'
    bridge = make_bridge(make_config(api_url=proxy.base_url, lookback=timedelta(0)))

    def rename(body: Any) -> Any:
        node = workers_node(body)
        assert node is not None
        for alias in (OPEN, SETTLING, GAUGES):
            for row in node.get(alias) or []:
                if row["dimensions"]["scriptName"] == "api-gateway":
                    row["dimensions"]["scriptName"] = odd
        return body

    proxy.rewrite = rename
    await bridge.start()
    clock.advance(120)
    await bridge.poll_once()
    exported = parse_prometheus(bridge.page.page.body.decode())
    names = {dict(labels).get("faas_name") for _, labels in exported}
    assert odd in names
    ledger_names = {script for s in bridge.accounts.values() for script, _ in s.ledgers[WORKERS].totals}
    assert odd in ledger_names
