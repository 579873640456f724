"""viewer.zones: zoneTag_in, the 10-zone limit, plans without a dataset, aliases; REST /zones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from gql.transport.exceptions import TransportQueryError

from otelbridge.simulator import Credential, Simulator, Traffic
from otelbridge.simulator.datasets import SPECS
from otelbridge.simulator.groups import TOO_MANY_ZONES
from tests.simulator.sim_support import NOW, Api, rfc3339

END = NOW.replace(second=0)
START = END - timedelta(minutes=30)
HTTP = SPECS["httpRequestsAdaptiveGroups"]

ZONES_QUERY = """
query Z($zones: [string!], $start: Time!, $end: Time!) { viewer { zones(filter: {zoneTag_in: $zones}) {
  zoneTag
  settings { httpRequestsAdaptiveGroups { enabled maxPageSize } firewallEventsAdaptiveGroups { enabled } }
  total: httpRequestsAdaptiveGroups(filter: {datetime_geq: $start, datetime_lt: $end}, limit: 10) { count }
} } }"""


def all_zones(traffic: Traffic) -> list[str]:
    return [z for a in traffic.accounts for z in a.zones]


async def run(api: Api, query: str, zones: list[str]) -> dict[str, Any]:
    return await api.execute(query, zones=zones, start=rfc3339(START), end=rfc3339(END))


async def test_zone_tag_in_selects_zones(api: Api, traffic: Traffic) -> None:
    chosen = all_zones(traffic)[:10:3]  # zones of two accounts
    data = await run(api, ZONES_QUERY, chosen)
    got = {z["zoneTag"]: z["total"][0]["count"] for z in data["viewer"]["zones"]}
    truth = {z: traffic.analytics.totals(HTTP.name, z, START, END, as_of=NOW)[()]["count"] for z in chosen}
    assert got == truth and len(got) == len(chosen)
    assert all(
        z["settings"]["httpRequestsAdaptiveGroups"] == {"enabled": True, "maxPageSize": 10000}
        for z in data["viewer"]["zones"]
    )


async def test_ten_zones_pass_eleven_fail(api: Api, traffic: Traffic) -> None:
    zones = all_zones(traffic)
    assert len(zones) > 10
    data = await run(api, ZONES_QUERY.replace("firewallEventsAdaptiveGroups { enabled }", ""), zones[:10])
    assert len(data["viewer"]["zones"]) == 10
    with pytest.raises(TransportQueryError) as failed:
        await run(api, ZONES_QUERY, zones[:11])
    assert failed.value.errors is not None
    assert failed.value.errors[0]["message"] == TOO_MANY_ZONES
    assert failed.value.data is None


async def test_no_filter_with_a_dataset_counts_every_visible_zone(api: Api) -> None:
    query = """query($start: Time!, $end: Time!) { viewer { zones {
      httpRequestsAdaptiveGroups(filter: {datetime_geq: $start, datetime_lt: $end}, limit: 1) { count }
    } } }"""
    with pytest.raises(TransportQueryError, match="too many nodes"):
        await api.execute(query, start=rfc3339(START), end=rfc3339(END))


async def test_a_zone_plan_without_the_dataset(api: Api, traffic: Traffic) -> None:
    free = next(z for z in traffic.analytics.resources[traffic.accounts[0].tag].zones if z.plan == "free")
    paid = traffic.accounts[0].zones[0]
    data = await run(api, ZONES_QUERY, [free.tag])
    settings = data["viewer"]["zones"][0]["settings"]
    assert settings["firewallEventsAdaptiveGroups"] == {"enabled": False}
    assert settings["httpRequestsAdaptiveGroups"]["enabled"] is True
    firewall = ZONES_QUERY.replace("total: httpRequestsAdaptiveGroups", "total: firewallEventsAdaptiveGroups")
    assert (await run(api, firewall, [paid]))["viewer"]["zones"][0]["total"][0]["count"] > 0
    with pytest.raises(TransportQueryError) as failed:
        await run(api, firewall, [paid, free.tag])
    assert failed.value.errors is not None
    error = failed.value.errors[0]
    assert error["message"] == f"zone '{free.tag}' does not have access to the path"
    assert error["extensions"]["code"] == "authz"
    assert error["path"][:3] == ["viewer", "zones", str(sorted([paid, free.tag]).index(free.tag))]


async def test_aliases_several_datasets_in_one_request(api: Api, traffic: Traffic) -> None:
    account = traffic.accounts[0]
    query = """query($a: string!, $zones: [string!], $start: Time!, $end: Time!) { viewer {
      accounts(filter: {accountTag: $a}) {
        r2: r2OperationsAdaptiveGroups(filter: {datetime_geq: $start, datetime_lt: $end}, limit: 100) {
          dimensions { bucketName } sum { requests } }
        d1: d1AnalyticsAdaptiveGroups(
            filter: {datetimeMinute_geq: $start, datetimeMinute_lt: $end}, limit: 100
        ) { count sum { readQueries } }
      }
      zones(filter: {zoneTag_in: $zones}) {
        zoneTag
        byStatus: httpRequestsAdaptiveGroups(filter: {datetime_geq: $start, datetime_lt: $end}, limit: 100,
            orderBy: [count_DESC]) { count dimensions { edgeResponseStatus } }
        whole: httpRequestsAdaptiveGroups(filter: {datetime_geq: $start, datetime_lt: $end}, limit: 1) {
          count }
      } } }"""
    data = await api.execute(
        query, a=account.tag, zones=[account.zones[0]], start=rfc3339(START), end=rfc3339(END)
    )
    analytics = traffic.analytics
    acct, zone = data["viewer"]["accounts"][0], data["viewer"]["zones"][0]
    r2 = analytics.totals("r2OperationsAdaptiveGroups", account.tag, START, END, by=["bucketName"], as_of=NOW)
    assert {r["dimensions"]["bucketName"]: r["sum"] for r in acct["r2"]} == {
        k[0]: {"requests": v["sum"]["requests"]} for k, v in r2.items()
    }
    d1 = analytics.totals("d1AnalyticsAdaptiveGroups", account.tag, START, END, as_of=NOW)[()]
    assert acct["d1"] == [{"count": d1["count"], "sum": {"readQueries": d1["sum"]["readQueries"]}}]
    assert api.sim.query_log[-1].datasets == ("r2", "d1", "byStatus", "whole")
    assert api.sim.query_log[-1].account_tags == (account.tag,)
    counts = [r["count"] for r in zone["byStatus"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) == zone["whole"][0]["count"]


async def zones_page(sim: Simulator, token: str = "sim-token", **query: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{sim.base_url}/zones", params=query, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_rest_zones_are_paged_per_account(sim: Simulator, traffic: Traffic) -> None:
    account = traffic.accounts[0]
    first = await zones_page(sim, **{"account.id": account.tag, "per_page": "5"})
    second = await zones_page(sim, **{"account.id": account.tag, "per_page": "5", "page": "2"})
    assert first["success"] is True and first["errors"] == []
    info = first["result_info"]
    assert (info["page"], info["per_page"], info["count"], info["total_count"], info["total_pages"]) == (
        1,
        5,
        5,
        len(account.zones),
        2,
    )
    assert second["result_info"]["count"] == len(account.zones) - 5
    listed = first["result"] + second["result"]
    assert sorted(z["id"] for z in listed) == sorted(account.zones)
    assert [z["name"] for z in listed] == sorted(z["name"] for z in listed)
    assert {z["account"]["id"] for z in listed} == {account.tag}
    everything = await zones_page(sim, per_page="50")
    assert everything["result_info"]["total_count"] == len(all_zones(traffic))


async def test_rest_zones_only_for_visible_accounts(traffic: Traffic) -> None:
    other = traffic.accounts[2]
    creds = [Credential("narrow", token="narrow-token", accounts=frozenset({other.tag}))]
    async with Simulator(traffic=traffic, credentials=creds) as sim:
        page = await zones_page(sim, "narrow-token")
        assert sorted(z["id"] for z in page["result"]) == sorted(other.zones)
        hidden = await zones_page(sim, "narrow-token", **{"account.id": traffic.accounts[0].tag})
        assert hidden["result"] == [] and hidden["result_info"]["total_count"] == 0
        api = Api(sim, {"Authorization": "Bearer narrow-token"})
        data = await api.execute(
            ZONES_QUERY, zones=traffic.accounts[0].zones[:1], start=rfc3339(START), end=rfc3339(END)
        )
        assert data["viewer"]["zones"] == []


async def test_each_plan_has_its_datasets(api: Api, traffic: Traffic) -> None:
    query = """query($zones: [string!]) { viewer { zones(filter: {zoneTag_in: $zones}) { zoneTag settings {
      http: httpRequestsAdaptiveGroups { enabled } fw: firewallEventsAdaptiveGroups { enabled }
      lb: loadBalancingRequestsAdaptiveGroups { enabled } hc: healthCheckEventsAdaptiveGroups { enabled }
    } } } }"""
    zones = traffic.analytics.resources[traffic.accounts[0].tag].zones
    data = await api.execute(query, zones=[z.tag for z in zones])
    got = {z["zoneTag"]: {k: v["enabled"] for k, v in z["settings"].items()} for z in data["viewer"]["zones"]}
    plans = {z.tag: z.plan for z in zones}
    expected = {
        "enterprise": {"http": True, "fw": True, "lb": True, "hc": True},
        "business": {"http": True, "fw": True, "lb": True, "hc": True},
        "pro": {"http": True, "fw": True, "lb": False, "hc": True},
        "free": {"http": True, "fw": False, "lb": False, "hc": False},
    }
    assert got == {tag: expected[plan] for tag, plan in plans.items()}
    assert set(plans.values()) == set(expected)
