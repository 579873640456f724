"""Every realism knob and one-shot fault, observed through a real gql client over HTTP."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)

from otelbridge.clock import ManualClock
from otelbridge.simulator import Credential, Knobs, Simulator, SimulatorThread, Traffic
from otelbridge.simulator.events import SUM_FIELDS
from tests.simulator.sim_support import BEARER, NOW, SCHEMA, Api, dataset_query, rfc3339

END = NOW.replace(second=0)
START = END - timedelta(minutes=10)
SUMS = "sum { " + " ".join(SUM_FIELDS) + " }"


def variables(account: str, start: Any = START, end: Any = END, limit: int = 100) -> dict[str, Any]:
    return {"account": account, "start": rfc3339(start), "end": rfc3339(end), "limit": limit}


async def query_error(api: Api, account: str, **kw: Any) -> dict[str, Any]:
    with pytest.raises(TransportQueryError) as caught:
        await api.execute(dataset_query(), **variables(account, **kw))
    assert caught.value.data is None
    (error,) = caught.value.errors or []
    assert isinstance(error, dict)
    return error


async def test_ingestion_delay_values_grow_monotonically_to_final(
    sim: Simulator, api: Api, traffic: Traffic, clock: ManualClock, account: str
) -> None:
    minute = END - timedelta(minutes=1)  # 11:59, ended 30 s ago
    final = traffic.totals(account, minute, END, as_of=NOW + timedelta(hours=1))
    sim.knobs.ingestion_delay = 120
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    seen_partial = False
    for _ in range(10):
        rows = await api.rows(account, minute, END, "scriptName status", SUMS)
        now = {(r["dimensions"]["scriptName"], r["dimensions"]["status"]): r["sum"] for r in rows}
        assert now == traffic.series_totals(account, minute, END, as_of=clock.now())
        for key, sums in previous.items():
            assert all(now[key][f] >= v for f, v in sums.items()), key
        total = sum(s["requests"] for s in now.values())
        seen_partial |= 0 < total < final["requests"]
        previous = now
        clock.advance(15)
    assert seen_partial
    assert clock.now() >= NOW + timedelta(seconds=120)
    assert sum(s["requests"] for s in previous.values()) == final["requests"]
    sim.knobs.ingestion_delay = 0
    assert traffic.totals(account, minute, END, as_of=NOW) == final


async def test_sampling_extrapolates_and_reports_sample_interval(
    api: Api, sim: Simulator, traffic: Traffic, account: str
) -> None:
    exact = traffic.totals(account, START, END, script="api-gateway")
    sim.knobs.sampling = True
    fields = f"{SUMS} avg {{ sampleInterval }} quantiles {{ cpuTimeP99 wallTimeP50 }}"
    rows = {
        r["dimensions"]["scriptName"]: r for r in await api.rows(account, START, END, "scriptName", fields)
    }
    busy = rows["api-gateway"]
    assert busy["avg"]["sampleInterval"] > 1
    assert busy["avg"]["sampleInterval"] == traffic.sample_interval(account, "api-gateway", START, END)
    assert busy["sum"] == {
        k: v for k, v in traffic.totals(account, START, END, script="api-gateway").items() if k in busy["sum"]
    }
    assert busy["sum"]["requests"] != exact["requests"]  # an estimate, close to the truth
    assert abs(busy["sum"]["requests"] - exact["requests"]) < 0.05 * exact["requests"]
    for script, row in rows.items():
        q = traffic.quantiles(account, script, START, END)
        assert row["quantiles"] == {k: q[k] for k in row["quantiles"]}
    assert rows["cron-cleanup"]["avg"]["sampleInterval"] == 1.0 if "cron-cleanup" in rows else True


async def test_rate_limit_budget_per_credential_and_window(traffic: Traffic, clock: ManualClock) -> None:
    creds = [Credential("a", token="token-a"), Credential("b", token="token-b")]
    account = traffic.accounts[0].tag
    async with Simulator(traffic=traffic, clock=clock, credentials=creds) as sim:
        sim.knobs.rate_limit, sim.knobs.rate_limit_queries = True, 3
        a, b = Api(sim, {"Authorization": "Bearer token-a"}), Api(sim, {"Authorization": "Bearer token-b"})
        for _ in range(3):
            await a.execute(dataset_query(), **variables(account))
            clock.advance(10)
        error = await query_error(a, account)
        assert error["message"] == "rate limiter budget depleted, try again after 5 minutes"
        assert error["extensions"]["code"] == "budget" and error["path"] is None
        assert sim.query_log[-1].http_status == 200 and sim.query_log[-1].outcome == "budget"
        await b.execute(dataset_query(), **variables(account))  # another credential has its own budget
        sim.knobs.rate_limit_http_status = 429
        await query_error(a, account)
        assert sim.query_log[-1].http_status == 429
        clock.advance(300 - 30 + 1)  # the first query leaves the window
        await a.execute(dataset_query(), **variables(account))
        assert [e.outcome for e in sim.query_log if e.credential == "a"] == ["ok"] * 3 + ["budget"] * 2 + [
            "ok"
        ]


async def test_dataset_limits_enforced_and_reported(sim: Simulator, api: Api, account: str) -> None:
    # Cloudflare's defaults; the rejected queries never touch data
    sim.knobs.enforce_limits = True
    error = await query_error(api, account, start=END - timedelta(days=3, seconds=60), end=END)
    assert error["message"] == "query time range is too large. Time range can't be wider than 259200s"
    error = await query_error(
        api, account, start=END - timedelta(days=32), end=END - timedelta(days=31, hours=23)
    )
    assert error["message"] == "cannot request data older than 2678400s"
    assert error["path"] == ["viewer", "accounts", "0", "workersInvocationsAdaptive"]
    # tighter limits, checked against small ranges
    sim.knobs.max_page_size, sim.knobs.max_duration, sim.knobs.not_older_than = 100, 3600, 86400
    error = await query_error(api, account, limit=101)
    assert error["message"] == "limit must be positive number and not greater than 100"
    error = await query_error(api, account, start=END - timedelta(hours=2))
    assert error["message"] == "query time range is too large. Time range can't be wider than 3600s"
    await api.execute(dataset_query(), **variables(account, END - timedelta(hours=1), END))
    sim.knobs.enforce_limits = False  # maxPageSize still applies; the others do not
    await api.execute(dataset_query(), **variables(account, END - timedelta(hours=2), END))
    await query_error(api, account, limit=101)
    data = await api.execute(
        "query($a: string!) { viewer { accounts(filter: {accountTag: $a}) { settings {"
        " workersInvocationsAdaptive { maxPageSize maxDuration notOlderThan maxNumberOfFields } } } } }",
        a=account,
    )
    settings = data["viewer"]["accounts"][0]["settings"]["workersInvocationsAdaptive"]
    assert settings == {
        "maxPageSize": 100,
        "maxDuration": 3600,
        "notOlderThan": 86400,
        "maxNumberOfFields": 30,
    }


async def test_whole_document_failure_probability(sim: Simulator, api: Api, account: str) -> None:
    sim.knobs.data_null_probability = 1.0
    error = await query_error(api, account)
    assert error["message"] == "unable to execute query, please try again later"
    assert set(error["extensions"]) == {"code", "timestamp"}
    sim.knobs.data_null_probability = 0.0
    await api.execute(dataset_query(), **variables(account))


async def test_latency(sim: Simulator, api: Api, account: str) -> None:
    sim.knobs.latency = 0.3
    started = time.perf_counter()
    await api.execute(dataset_query(), **variables(account))
    assert time.perf_counter() - started >= 0.3


async def test_server_error_probability_serves_edge_html(sim: Simulator, api: Api, account: str) -> None:
    sim.knobs.server_error_probability = 1.0
    codes = set()
    for _ in range(8):
        with pytest.raises(TransportServerError) as caught:
            await api.execute(dataset_query(), **variables(account))
        codes.add(caught.value.code)
    assert codes == {502, 503}


async def test_malformed_probability_truncates_json(sim: Simulator, api: Api, account: str) -> None:
    sim.knobs.malformed_probability = 1.0
    with pytest.raises(TransportProtocolError):
        await api.execute(dataset_query(), **variables(account))


async def test_reset_probability_drops_the_connection(sim: Simulator, api: Api, account: str) -> None:
    sim.knobs.reset_probability = 1.0
    with pytest.raises(TransportConnectionFailed):
        await api.execute(dataset_query(), **variables(account))
    assert sim.query_log[-1].outcome == "reset"


async def outcomes(traffic: Traffic, seed: int) -> list[str]:
    async with Simulator(traffic=traffic, knobs=Knobs(server_error_probability=0.5, fault_seed=seed)) as sim:
        api = Api(sim)
        for _ in range(12):
            with contextlib.suppress(TransportServerError):
                await api.execute("{ viewer { zones { zoneTag } } }")
        return [e.outcome for e in sim.query_log]


async def test_fault_seed_makes_faults_deterministic(traffic: Traffic) -> None:
    first, again, other = await outcomes(traffic, 5), await outcomes(traffic, 5), await outcomes(traffic, 6)
    assert first == again and first != other
    assert {"ok", "server_error"} == set(first)


@pytest.mark.parametrize(
    ("kind", "raised"),
    [
        ("server_error", TransportServerError),
        ("malformed", TransportProtocolError),
        ("reset", TransportConnectionFailed),
        ("data_null", TransportQueryError),
        ("budget", TransportQueryError),
        ("html", TransportProtocolError),
    ],
)
async def test_fail_next(sim: Simulator, api: Api, account: str, kind: Any, raised: type[Exception]) -> None:
    sim.fail_next(kind, count=2)
    for _ in range(2):
        with pytest.raises(raised):
            await api.execute(dataset_query(), **variables(account))
    await api.execute(dataset_query(), **variables(account))
    assert [e.outcome for e in sim.query_log] == [kind, kind, "ok"]


async def test_query_log_and_reset(sim: Simulator, api: Api, account: str) -> None:
    await api.execute(dataset_query(), **variables(account))
    (entry,) = sim.query_log
    assert entry.credential == "sim" and "sim-token" not in repr(entry)
    assert entry.account_tags == (account,) and entry.datasets == ("workersInvocationsAdaptive",)
    assert entry.variables["account"] == account and entry.time == NOW and entry.http_status == 200
    sim.reset_log()
    assert sim.query_log == []


def test_knobs_settable_by_name() -> None:
    knobs = Knobs()
    for name, text, value in [
        ("sampling", "true", True),
        ("rate_limit_queries", "12", 12),
        ("latency", "0.5", 0.5),
    ]:
        knobs.set(name, text)
        assert getattr(knobs, name) == value
    assert "ingestion_delay" in Knobs.names()
    with pytest.raises(AttributeError):
        knobs.set("nope", "1")


def test_simulator_thread_serves_synchronous_code(traffic: Traffic) -> None:
    with SimulatorThread(Simulator(traffic=traffic, clock=ManualClock(NOW))) as sim:
        client = Client(transport=AIOHTTPTransport(url=sim.graphql_url, headers=BEARER), schema=SCHEMA)
        result = client.execute(
            GraphQLRequest(dataset_query(), variable_values=variables(traffic.accounts[0].tag))
        )
        rows = result["viewer"]["accounts"][0]["workersInvocationsAdaptive"]
        assert rows == [
            {"sum": {"requests": traffic.totals(traffic.accounts[0].tag, START, END, as_of=NOW)["requests"]}}
        ]


async def test_clear_faults_drops_queued_one_shots(sim: Simulator, api: Api, account: str) -> None:
    sim.fail_next("server_error", count=3)
    sim.fail_next("budget", endpoint="accounts")
    sim.clear_faults()
    await api.execute(dataset_query(), **variables(account))
    assert [e.outcome for e in sim.query_log] == ["ok"]
