"""Helpers for the simulator tests: a real gql client with the project's schema, query builders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from graphql import build_schema

from otelbridge.simulator import DEFAULT_TOKEN, Simulator
from otelbridge.simulator.resolvers import SCHEMA_PATH

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)  # mid-minute: 12:00 has not ended yet
SCHEMA = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
BEARER = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset_query(dimensions: str = "", fields: str = "sum { requests }", *, order: str = "") -> str:
    """One workersInvocationsAdaptive node over [$start, $end) with the given selection."""
    dims = f"dimensions {{ {dimensions} }}" if dimensions else ""
    order_arg = f", orderBy: [{order}]" if order else ""
    return f"""
    query Q($account: string!, $start: Time!, $end: Time!, $limit: uint64!) {{
      viewer {{ accounts(filter: {{accountTag: $account}}) {{
        workersInvocationsAdaptive(
          filter: {{datetime_geq: $start, datetime_lt: $end}}, limit: $limit{order_arg}
        ) {{
          {dims} {fields}
        }}
      }} }}
    }}"""


class Api:
    """A gql client against the simulator, validating documents locally with the project's schema."""

    def __init__(self, sim: Simulator, headers: dict[str, str] | None = None) -> None:
        self.sim = sim
        self.headers = BEARER if headers is None else headers

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        transport = AIOHTTPTransport(url=self.sim.graphql_url, headers=self.headers)
        async with Client(transport=transport, schema=SCHEMA) as session:
            result: dict[str, Any] = await session.execute(GraphQLRequest(query, variable_values=variables))
            return result

    async def rows(
        self,
        account: str,
        start: datetime,
        end: datetime,
        dimensions: str = "",
        fields: str = "sum { requests }",
        *,
        order: str = "",
        limit: int = 10000,
    ) -> list[dict[str, Any]]:
        data = await self.execute(
            dataset_query(dimensions, fields, order=order),
            account=account,
            start=rfc3339(start),
            end=rfc3339(end),
            limit=limit,
        )
        rows: list[dict[str, Any]] = data["viewer"]["accounts"][0]["workersInvocationsAdaptive"]
        return rows
