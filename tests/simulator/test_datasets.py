"""Zone and developer-platform datasets: the API's answers over HTTP equal the ground truth."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from otelbridge.clock import ManualClock
from otelbridge.simulator import Simulator, Traffic
from otelbridge.simulator.datasets import SPECS, DatasetSpec
from tests.simulator.sim_support import NOW, Api, group_rows

END = NOW.replace(second=0)
START = END - timedelta(hours=1)
HTTP = "httpRequestsAdaptiveGroups"

GROUPINGS = [
    ("httpRequestsAdaptiveGroups", ""),
    ("httpRequestsAdaptiveGroups", "edgeResponseStatus"),
    ("httpRequestsAdaptiveGroups", "cacheStatus clientCountryName"),
    (
        "httpRequestsAdaptiveGroups",
        "clientRequestHTTPHost clientRequestHTTPMethodName coloCode edgeResponseStatus",
    ),
    ("firewallEventsAdaptiveGroups", "action source"),
    ("firewallEventsAdaptiveGroups", "clientCountryName clientRequestHTTPHost edgeResponseStatus ruleId"),
    ("dnsAnalyticsAdaptiveGroups", "queryName queryType"),
    ("dnsAnalyticsAdaptiveGroups", "coloName protocol responseCached responseCode"),
    ("loadBalancingRequestsAdaptiveGroups", "lbName selectedPoolName"),
    ("loadBalancingRequestsAdaptiveGroups", "coloCode errorType region selectedOriginName steeringPolicy"),
    ("healthCheckEventsAdaptiveGroups", "healthCheckName healthStatus"),
    ("healthCheckEventsAdaptiveGroups", "failureReason originResponseStatus region"),
    ("r2OperationsAdaptiveGroups", "bucketName actionType"),
    ("r2OperationsAdaptiveGroups", "actionStatus eyeballRegion responseStatusCode storageClass"),
    ("r2StorageAdaptiveGroups", "bucketName storageClass"),
    ("d1AnalyticsAdaptiveGroups", "databaseId"),
    ("d1AnalyticsAdaptiveGroups", "databaseRole servedByRegion"),
    ("kvOperationsAdaptiveGroups", "namespaceId actionType"),
    ("kvOperationsAdaptiveGroups", "result responseStatusCode"),
    ("durableObjectsInvocationsAdaptiveGroups", "namespaceId"),
    ("durableObjectsInvocationsAdaptiveGroups", "environmentName scriptName status"),
    ("queueMessageOperationsAdaptiveGroups", "queueId actionType"),
    ("queueMessageOperationsAdaptiveGroups", "consumerType outcome"),
    ("queueBacklogAdaptiveGroups", "queueId"),
    ("pagesFunctionsInvocationsAdaptiveGroups", "scriptName status"),
    ("pagesFunctionsInvocationsAdaptiveGroups", "status usageModel"),
]


def scope_of(traffic: Traffic, spec: DatasetSpec) -> str:
    """The busiest scope: account 0, or its first (enterprise) zone."""
    account = traffic.accounts[0]
    return account.zones[0] if spec.scope == "zone" else account.tag


def by_key(rows: list[dict[str, Any]], dims: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for row in rows:
        key = tuple(row["dimensions"][d] for d in dims) if dims else ()
        out[key] = {k: v for k, v in row.items() if k != "dimensions"}
    assert len(out) == len(rows), "two rows for one group"
    return out


@pytest.mark.parametrize(("dataset", "dimensions"), GROUPINGS)
async def test_groups_equal_ground_truth(api: Api, traffic: Traffic, dataset: str, dimensions: str) -> None:
    spec = SPECS[dataset]
    scope = scope_of(traffic, spec)
    rows = await group_rows(api, spec, scope, START, END, dimensions)
    dims = dimensions.split()
    truth = traffic.analytics.totals(dataset, scope, START, END, by=dims, as_of=NOW)
    assert by_key(rows, dims) == truth
    assert len(truth) >= (1 if not dims else 2)  # the grouping really splits the data


@pytest.mark.parametrize("dataset", sorted(SPECS))
async def test_every_minute_equals_ground_truth(api: Api, traffic: Traffic, dataset: str) -> None:
    spec = SPECS[dataset]
    scope = scope_of(traffic, spec)
    start = END - timedelta(minutes=5)
    rows = await group_rows(api, spec, scope, start, END, "datetimeMinute")
    minutes = [start + timedelta(minutes=i) for i in range(5)]
    assert [r["dimensions"]["datetimeMinute"] for r in rows] == [
        m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in minutes
    ]
    for row, minute in zip(rows, minutes, strict=True):
        truth = traffic.analytics.totals(dataset, scope, minute, minute + timedelta(minutes=1), as_of=NOW)
        assert {k: v for k, v in row.items() if k != "dimensions"} == truth[()]


def test_datasets_have_their_own_time_dimensions() -> None:
    assert "datetime" not in SPECS["d1AnalyticsAdaptiveGroups"].time_dimensions
    assert "datetimeSixHours" in SPECS["durableObjectsInvocationsAdaptiveGroups"].time_dimensions
    assert "datetimeFiveMinutes" not in SPECS["r2OperationsAdaptiveGroups"].time_dimensions


async def test_d1_rejects_a_datetime_filter(sim: Simulator, traffic: Traffic) -> None:
    """d1AnalyticsAdaptiveGroups has no `datetime`: Cloudflare's validation refuses the key."""
    import aiohttp

    query = """query($a: string!) { viewer { accounts(filter: {accountTag: $a}) {
      d1AnalyticsAdaptiveGroups(filter: {datetime_geq: "2026-11-26T11:00:00Z"}, limit: 10) { count } } } }"""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sim.graphql_url,
            json={"query": query, "variables": {"a": traffic.accounts[0].tag}},
            headers={"Authorization": "Bearer sim-token"},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400 and body["data"] is None
    assert "datetime_geq" in body["errors"][0]["message"]


async def test_levels_are_snapshots_and_the_latest_matches(api: Api, traffic: Traffic) -> None:
    spec = SPECS["r2StorageAdaptiveGroups"]
    account = traffic.accounts[0].tag
    rows = await group_rows(
        api,
        spec,
        account,
        END - timedelta(minutes=10),
        END,
        "bucketName storageClass datetimeMinute",
        order="datetimeMinute_DESC",
    )
    latest: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:  # newest first
        d = row["dimensions"]
        latest.setdefault((d["bucketName"], d["storageClass"]), row["max"])
    assert latest == traffic.analytics.latest_levels(spec.name, account, as_of=NOW)
    # a level over a day is its largest snapshot (the newest: storage only grows), not a sum
    day = await group_rows(api, spec, account, END - timedelta(days=1), END, "bucketName storageClass")
    assert {(r["dimensions"]["bucketName"], r["dimensions"]["storageClass"]): r["max"] for r in day} == latest


def test_http_aggregates_follow_the_records() -> None:
    """count and sums from the records themselves (not through the shared aggregation)."""
    traffic = Traffic.default(seed=3)
    zone = traffic.accounts[0].zones[1]
    last = int(END.timestamp()) // 60
    records = [r for m in range(last - 10, last) for r in traffic.analytics.block(HTTP, zone, m)]
    truth = traffic.analytics.totals(HTTP, zone, END - timedelta(minutes=10), END, as_of=NOW)[()]
    assert truth["count"] == sum(r.weight for r in records) > 0
    assert truth["sum"]["edgeResponseBytes"] == sum(r.weight * r.values[1] for r in records)
    assert truth["sum"]["visits"] == sum(r.weight for r in records if r.values[2])
    assert 0 < truth["sum"]["visits"] < truth["count"]


FILTERS = [
    ("edgeResponseStatus", "{edgeResponseStatus_geq: 400}", lambda v: v >= 400),
    ("cacheStatus", '{cacheStatus_in: ["hit", "miss"]}', lambda v: v in ("hit", "miss")),
    ("clientRequestHTTPHost", '{clientRequestHTTPHost_like: "www.%"}', lambda v: v.startswith("www.")),
    ("clientCountryName", '{clientCountryName_notin: ["US", "DE"]}', lambda v: v not in ("US", "DE")),
    ("coloCode", '{OR: [{coloCode: "AMS"}, {coloCode_gt: "SI"}]}', lambda v: v == "AMS" or v > "SI"),
]


@pytest.mark.parametrize(("dimension", "literal", "keep"), FILTERS)
async def test_filters_on_zone_dimensions(
    api: Api, traffic: Traffic, dimension: str, literal: str, keep: Callable[[Any], bool]
) -> None:
    spec = SPECS[HTTP]
    zone = traffic.accounts[0].zones[0]
    rows = await group_rows(api, spec, zone, START, END, dimension, where=literal)
    truth = traffic.analytics.totals(HTTP, zone, START, END, by=[dimension], as_of=NOW)
    expected = {k: v for k, v in truth.items() if keep(k[0])}
    assert by_key(rows, [dimension]) == expected
    assert 0 < len(expected) < len(truth)


async def test_order_by_and_limit(api: Api, traffic: Traffic) -> None:
    spec = SPECS["kvOperationsAdaptiveGroups"]
    account = traffic.accounts[0].tag
    dims = "namespaceId actionType result"
    rows = await group_rows(api, spec, account, START, END, dims, order="sum_objectBytes_DESC", limit=3)
    truth = traffic.analytics.totals(spec.name, account, START, END, by=dims.split(), as_of=NOW)
    top = sorted(truth.values(), key=lambda v: v["sum"]["objectBytes"], reverse=True)[:3]
    assert [{k: v for k, v in r.items() if k != "dimensions"} for r in rows] == top
    by_name = await group_rows(api, spec, account, START, END, dims, order="result_DESC, count_ASC")
    keys = [(r["dimensions"]["result"], -r["count"]) for r in by_name]
    assert keys == sorted(keys, reverse=True)


async def test_late_data_grows_then_settles(traffic: Traffic) -> None:
    clock = ManualClock(END + timedelta(seconds=5))
    async with Simulator(traffic=traffic, clock=clock) as sim:
        sim.knobs.ingestion_delay = 120
        api = Api(sim)
        minute = END - timedelta(minutes=1)
        zone = traffic.accounts[0].zones[0]
        seen = []
        for wait in (5, 40, 80, 119, 125, 300):
            clock.set(END + timedelta(seconds=wait))
            rows = await group_rows(api, SPECS[HTTP], zone, minute, END)
            seen.append(rows[0]["count"] if rows else 0)
            assert seen[-1] == (traffic.analytics.totals(HTTP, zone, minute, END)[()]["count"] if rows else 0)
        assert seen == sorted(seen) and seen[0] < seen[-1]
        assert seen[-3] == seen[-2] == seen[-1]  # complete once the delay has passed


async def test_sampling_estimates_busy_groups(traffic: Traffic, clock: ManualClock) -> None:
    async with Simulator(traffic=traffic, clock=clock) as sim:
        sim.knobs.sampling = True
        zone = traffic.accounts[0].zones[0]
        rows = await group_rows(Api(sim), SPECS[HTTP], zone, START, END, "edgeResponseStatus")
        truth = traffic.analytics.totals(HTTP, zone, START, END, by=["edgeResponseStatus"], as_of=NOW)
        assert by_key(rows, ["edgeResponseStatus"]) == truth
        assert max(r["avg"]["sampleInterval"] for r in rows) > 1
        sim.knobs.sampling = False
        exact = traffic.analytics.totals(HTTP, zone, START, END, as_of=NOW)[()]["count"]
        assert sum(r["count"] for r in rows) != exact  # an estimate, not the exact count


async def test_backlog_is_an_average_of_snapshots_and_idle_queues_are_absent(
    api: Api, traffic: Traffic
) -> None:
    spec = SPECS["queueBacklogAdaptiveGroups"]
    account = traffic.accounts[0].tag
    minutes = await group_rows(api, spec, account, START, END, "queueId datetimeMinute")
    whole = by_key(await group_rows(api, spec, account, START, END, "queueId"), ["queueId"])
    per_queue: dict[str, list[int]] = {}
    for row in minutes:
        per_queue.setdefault(row["dimensions"]["queueId"], []).append(row["avg"]["messages"])
    for (queue,), row in whole.items():
        levels = per_queue[queue]
        assert row["avg"]["messages"] == sum(levels) // len(levels)  # a mean of levels, not a sum
    queues = traffic.analytics.resources[account].queues
    idle = next(q for q in queues if q.rate < 1)
    assert 0 < len(per_queue.get(idle.id, [])) < 60 == len(per_queue[queues[0].id])


async def test_uint8_dimension_filters(api: Api, traffic: Traffic) -> None:
    spec = SPECS["dnsAnalyticsAdaptiveGroups"]
    zone = traffic.accounts[0].zones[0]
    truth = traffic.analytics.totals(spec.name, zone, START, END, by=["responseCached"], as_of=NOW)
    assert set(truth) == {(0,), (1,)}
    for literal, kept in (("{responseCached: 1}", (1,)), ("{responseCached_neq: 1}", (0,))):
        rows = await group_rows(api, spec, zone, START, END, "responseCached", where=literal)
        assert by_key(rows, ["responseCached"]) == {kept: truth[kept]}
