"""Helpers for the simulator tests: a real gql client with the project's schema, query builders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from graphql import build_schema

from otelbridge.simulator import DEFAULT_TOKEN, Simulator
from otelbridge.simulator.datasets import DatasetSpec
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


def aggregates(spec: DatasetSpec) -> str:
    """Every aggregate field the simulator serves for a dataset, as a selection."""
    parts = ["count"] if spec.count else []
    if spec.sums:
        parts.append("sum { " + " ".join(name for name, _ in spec.sums) + " }")
    if spec.maxes:
        parts.append("max { " + " ".join(spec.maxes) + " }")
    averages = [*spec.averages, *(["sampleInterval"] if spec.sample_interval else [])]
    if averages:
        parts.append("avg { " + " ".join(averages) + " }")
    return " ".join(parts)


def time_key(spec: DatasetSpec) -> str:
    """The finest time filter key of a dataset (d1 has no `datetime`)."""
    return "datetime" if "datetime" in spec.time_dimensions else "datetimeMinute"


def group_query(
    spec: DatasetSpec, dimensions: str = "", *, where: str = "", order: str = "", limit: int = 10000
) -> str:
    """One dataset node over [$start, $end) for the zones $scopes or the account $scopes[0]."""
    t = time_key(spec)
    time_filter = f"{t}_geq: $start, {t}_lt: $end"
    filter_literal = f"{{AND: [{{{time_filter}}}, {where}]}}" if where else f"{{{time_filter}}}"
    dims = f"dimensions {{ {dimensions} }}" if dimensions else ""
    order_arg = f", orderBy: [{order}]" if order else ""
    node = f"{spec.name}(filter: {filter_literal}, limit: {limit}{order_arg}) {{ {dims} {aggregates(spec)} }}"
    if spec.scope == "zone":
        scope = f"zones(filter: {{zoneTag_in: $scopes}}) {{ zoneTag {node} }}"
        variables = "$scopes: [string!]"
    else:
        scope = f"accounts(filter: {{accountTag: $scope}}) {{ {node} }}"
        variables = "$scope: string!"
    return f"query Q({variables}, $start: Time!, $end: Time!) {{ viewer {{ {scope} }} }}"


async def group_rows(
    api: Api, spec: DatasetSpec, scope: str, start: datetime, end: datetime, dimensions: str = "", **kw: Any
) -> list[dict[str, Any]]:
    """The rows of one zone's or account's dataset node."""
    scope_var: dict[str, Any] = {"scopes": [scope]} if spec.scope == "zone" else {"scope": scope}
    data = await api.execute(
        group_query(spec, dimensions, **kw), start=rfc3339(start), end=rfc3339(end), **scope_var
    )
    holder = data["viewer"]["zones" if spec.scope == "zone" else "accounts"]
    assert len(holder) == 1
    rows: list[dict[str, Any]] = holder[0][spec.name]
    return rows
