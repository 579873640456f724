"""Bad answers from Cloudflare: each is logged and counted, the last good data keeps being served,
and the next good answer brings the totals back to exactly Cloudflare's (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import math
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.certs import self_signed
from tests.datasets import GAUGES, OPEN, SETTLING, WORKERS
from tests.metrics_text import api_requests, expected_counters, parse_prometheus
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


# Each spoiled answer and the outcome it must be counted as. A malformed answer is transient
# (retried within the cycle); an answer without the account node says the credential may not read
# the account (Cloudflare's own way of saying so), which is not retried.
SPOILERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "string instead of a number": (set_sum("requests", "12"), "malformed"),
    "negative count": (set_sum("requests", -5), "malformed"),
    "float for a uint64 field": (set_sum("requests", 1.5), "malformed"),
    "boolean instead of a number": (set_sum("errors", True), "malformed"),
    "null sum value": (set_sum("cpuTimeUs", None), "malformed"),
    "infinite float": (set_sum("duration", math.inf), "malformed"),
    "duplicate group rows": (duplicate_row, "malformed"),
    "row without dimensions": (drop_dimensions, "malformed"),
    "row without sum": (drop_sum, "malformed"),
    "rows not a list": (rows_not_a_list, "malformed"),
    "null quantile": (null_quantile, "malformed"),
    "alias missing": (missing_alias, "malformed"),
    "script name of the wrong type": (script_name_number, "malformed"),
    "account node missing": (no_account_node, "authz"),
}
TRIES = {"malformed": 3, "authz": 1}  # requests per account in the cycle: retried or not


def assert_refused_as(bridge: Bridge, proxy: TamperProxy, outcome: str, ok_before: float) -> None:
    """Every Workers answer of the cycle was spoiled, served by the proxy, and counted as `outcome`."""
    tries = TRIES[outcome] * len(bridge.accounts)
    assert proxy.spoiled_served == tries, "the proxy served the spoiled answer on every try"
    assert api_requests(bridge.page.page.body.decode()) == {"ok": ok_before, outcome: tries}
    assert dict(bridge.outcomes) == {"ok": ok_before, outcome: tries}


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
    ok_before = bridge.outcomes["ok"]
    proxy.rewrite, outcome = SPOILERS[case]
    await bridge.poll_once()
    assert not any(up(bridge).values())
    assert counters(bridge) == before, "a refused answer must not touch the totals"
    assert_refused_as(bridge, proxy, outcome, ok_before)
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

    ok_before = bridge.outcomes["ok"]
    proxy.rewrite = with_nan
    await bridge.poll_once()
    assert "NaN" in (proxy.raw_text or "")
    assert not any(up(bridge).values())
    assert counters(bridge) == before
    assert_refused_as(bridge, proxy, "malformed", ok_before)
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
    ok_before = bridge.outcomes["ok"]
    sim.fail_next(fault, count=100)  # type: ignore[arg-type]
    await bridge.poll_once()
    assert not any(up(bridge).values())
    assert counters(bridge) == before
    # Transient faults: three attempts per account. A budget error is not retried, and blocks the
    # credential's budget: the other accounts are deferred without asking.
    expected = {
        "server_error": {"server_error": 9},
        "html": {"malformed": 9},
        "malformed": {"malformed": 9},
        "reset": {"connection": 9},
        "data_null": {"server_error": 9},
        "budget": {"rate_limited": 1, "deferred": 2},
    }[fault]
    assert dict(bridge.outcomes) == {"ok": ok_before, **expected}
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


async def test_timeouts_are_retried_up_to_the_attempts_and_counted(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(request_timeout=timedelta(seconds=0.3)))
    before = await _good_then(bridge, clock)
    sim.knobs.latency = 0.6
    await bridge.poll_once()
    assert bridge.outcomes["timeout"] == 3 * len(bridge.accounts), "three attempts per account"
    assert not any(up(bridge).values())
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


async def test_tls_handshake_failure_is_reported_as_such(
    sim: Simulator, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    """https:// to a server that speaks plain HTTP: the handshake fails, and the error says TLS."""
    bridge = make_bridge(make_config(api_url=sim.base_url.replace("http://", "https://")))
    await bridge.start()
    assert bridge.discovery_error == "ConnectionFailed: TLS failure talking to 127.0.0.1: SSLError"
    assert dict(bridge.outcomes) == {"connection": 1}
    assert not sim.query_log, "no request reached the API"


async def test_untrusted_certificate_is_reported_as_a_tls_failure(
    sim: Simulator, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    """A real TLS server whose certificate the system does not trust: refused, and said so."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def anything(request: web.Request) -> web.Response:
        return web.json_response({"success": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        bridge = make_bridge(make_config(api_url=f"https://127.0.0.1:{port}/client/v4"))
        await bridge.start()
        assert (
            bridge.discovery_error
            == "ConnectionFailed: TLS failure talking to 127.0.0.1: SSLCertVerificationError"
        )
        assert dict(bridge.outcomes) == {"connection": 1}
    finally:
        await runner.cleanup()


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
