"""Authentication and authorization failures have Cloudflare's shapes; REST /accounts pages."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from gql.transport.exceptions import TransportQueryError

from otelbridge.simulator import Credential, Simulator, Traffic
from tests.simulator.sim_support import NOW, Api, dataset_query, rfc3339


async def post(sim: Simulator, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        body = {"query": "{ viewer { zones { zoneTag } } }"}
        async with s.post(sim.graphql_url, json=body, headers=headers) as r:
            return r.status, await r.json()


@pytest.mark.parametrize(
    ("headers", "status", "code", "message", "chain"),
    [
        ({}, 403, 10000, "Authentication error", None),
        ({"Authorization": "Bearer not-a-known-token"}, 403, 9109, "Invalid access token", None),
        ({"Authorization": "sim-token"}, 400, 6003, "Invalid request headers", 6111),
        ({"Authorization": "Bearer "}, 400, 6003, "Invalid request headers", 6111),
        (
            {"X-Auth-Email": "ops@example.com", "X-Auth-Key": "wrong"},
            403,
            10000,
            "Authentication error",
            None,
        ),
        ({"X-Auth-Key": "k"}, 400, 6003, "Invalid request headers", 6102),
    ],
)
async def test_bad_credentials_get_the_rest_envelope(
    sim: Simulator, headers: dict[str, str], status: int, code: int, message: str, chain: int | None
) -> None:
    got_status, body = await post(sim, headers)
    assert got_status == status
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    (error,) = body["errors"]
    assert (error["code"], error["message"]) == (code, message)
    if chain is not None:
        assert [c["code"] for c in error["error_chain"]] == [chain]
    assert sim.query_log[-1].outcome == "auth" and sim.query_log[-1].credential is None


async def test_legacy_email_and_key(traffic: Traffic, clock: object) -> None:
    creds = [Credential("legacy", email="ops@example.com", key="0123abcd")]
    async with Simulator(traffic=traffic, credentials=creds) as sim:
        api = Api(sim, {"X-Auth-Email": "ops@example.com", "X-Auth-Key": "0123abcd"})
        data = await api.execute("{ viewer { zones { zoneTag } } }")
        assert len(data["viewer"]["zones"]) == sum(len(a.zones) for a in traffic.accounts)
        assert sim.query_log[-1].credential == "legacy"


async def test_token_without_access_to_the_account_gets_authz(traffic: Traffic) -> None:
    own, other = traffic.accounts[0].tag, traffic.accounts[1].tag
    creds = [Credential("narrow", token="narrow-token", accounts=frozenset({own}))]
    async with Simulator(traffic=traffic, credentials=creds) as sim:
        api = Api(sim, {"Authorization": "Bearer narrow-token"})
        variables = {"account": other, "start": rfc3339(NOW), "end": rfc3339(NOW), "limit": 10}
        with pytest.raises(TransportQueryError) as caught:
            await api.execute(dataset_query(), **variables)
        assert caught.value.data is None
        (error,) = caught.value.errors or []
        assert error["message"] == "not authorized for that account"
        assert error["path"] == ["viewer", "accounts"]
        assert error["extensions"]["code"] == "authz" and error["extensions"]["timestamp"].endswith("Z")
        await api.execute(dataset_query(), **{**variables, "account": own})
        data = await api.execute("{ viewer { zones { zoneTag } } }")
        assert {z["zoneTag"] for z in data["viewer"]["zones"]} == set(traffic.accounts[0].zones)
        assert [e.outcome for e in sim.query_log] == ["authz", "ok", "ok"]


async def get_accounts(sim: Simulator, query: str, token: str = "sim-token") -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{sim.base_url}/accounts{query}", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.json()


async def test_accounts_rest_paging() -> None:
    traffic = Traffic.scaled(seed=3, accounts=12, scripts_per_account=2)
    async with Simulator(traffic=traffic) as sim:
        seen = []
        for page in (1, 2, 3):
            status, body = await get_accounts(sim, f"?page={page}&per_page=5")
            assert status == 200 and body["success"] is True and body["errors"] == []
            info = body["result_info"]
            assert (info["page"], info["per_page"], info["total_count"], info["total_pages"]) == (
                page,
                5,
                12,
                3,
            )
            assert info["count"] == len(body["result"]) == (5 if page < 3 else 2)
            seen += [(a["id"], a["name"]) for a in body["result"]]
        assert seen == [(a.tag, a.name) for a in traffic.accounts]
        _, default = await get_accounts(sim, "")
        assert default["result_info"]["per_page"] == 20 and default["result_info"]["count"] == 12


async def test_accounts_rest_lists_only_what_the_token_sees(traffic: Traffic) -> None:
    tag = traffic.accounts[2].tag
    creds = [Credential("one", token="one-token", accounts=frozenset({tag}))]
    async with Simulator(traffic=traffic, credentials=creds) as sim:
        _, body = await get_accounts(sim, "", token="one-token")
        assert [a["id"] for a in body["result"]] == [tag]
        status, body = await get_accounts(sim, "", token="sim-token")  # not configured here
        assert status == 403 and body["errors"][0]["code"] == 9109
