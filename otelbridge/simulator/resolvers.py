"""GraphQL execution against otelbridge's Cloudflare schema subset, with Cloudflare's group-by semantics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
)

from otelbridge.simulator import events as ev
from otelbridge.simulator.auth import Credential
from otelbridge.simulator.events import Seen
from otelbridge.simulator.filters import DIMENSIONS, Key, compile_filter, split_range, time_bounds
from otelbridge.simulator.knobs import Knobs
from otelbridge.simulator.rows import fields, plan, render, splice
from otelbridge.simulator.traffic import Account, Traffic

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "cloudflare" / "schema.graphql"
DATASET = "workersInvocationsAdaptive"
_ROW_TYPE = "AccountWorkersInvocationsAdaptive"


@dataclass
class RequestContext:
    traffic: Traffic
    knobs: Knobs
    credential: Credential
    now: datetime
    fast_rows: bool = True  # render pages with rows.render instead of graphql-core's completion
    pages: list[tuple[list[str | int], list[dict[str, Any]]]] = field(default_factory=list)

    def finish(self, data: dict[str, Any]) -> dict[str, Any]:
        """Put the pages rendered outside graphql-core into its result."""
        for path, page in self.pages:
            splice(data, path, page)
        return data


def cf_error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class Row:
    """One group of events; aggregates are computed only when selected or ordered by."""

    def __init__(
        self, key: tuple[Key, ...], dimensions: dict[str, Any], seen: list[Seen], exact: bool = False
    ) -> None:
        self.key = key
        self.dimensions = dimensions
        self.seen = seen
        self.exact = exact  # float sums computed exactly (decimal_floats)

    @cached_property
    def sum(self) -> dict[str, ev.Number]:
        return ev.sums(self.seen, self.exact)

    @cached_property
    def quantiles(self) -> ev.LazyQuantiles:
        return ev.LazyQuantiles(self.seen)

    @cached_property
    def max(self) -> dict[str, float]:
        return ev.extremes(self.seen, "max")

    @cached_property
    def min(self) -> dict[str, float]:
        return ev.extremes(self.seen, "min")

    @cached_property
    def avg(self) -> dict[str, float]:
        return {"sampleInterval": ev.sample_interval(self.seen)}


def selected_dimensions(info: GraphQLResolveInfo[RequestContext]) -> list[str]:
    """Dimension fields selected under `dimensions` (any alias, through fragments), in order."""
    found: dict[str, None] = {}
    variables = info.variable_values.coerced
    for node in info.field_nodes:
        for group in fields(node.selection_set, info.fragments, variables):
            if group.name.value == "dimensions":
                for dim in fields(group.selection_set, info.fragments, variables):
                    if dim.name.value in DIMENSIONS:
                        found[dim.name.value] = None
    return list(found)


def _order_value(row: Row, stem: str, dims: list[str]) -> Any:
    if stem in DIMENSIONS:
        if stem not in dims:
            raise cf_error(f"orderBy {stem} requires selecting dimensions {{ {stem} }}", "bad_request")
        return row.key[dims.index(stem)]
    group, _, field = stem.partition("_")
    return getattr(row, group)[field]


def _order_key(stem: str, dims: list[str]) -> Callable[[Row], Any]:
    return lambda row: _order_value(row, stem, dims)


def resolve_dataset(
    account: Account,
    info: GraphQLResolveInfo[RequestContext],
    filter: dict[str, Any],
    limit: int,
    orderBy: list[str] | None = None,
) -> list[Row]:
    ctx: RequestContext = info.context
    knobs = ctx.knobs
    if not 0 < int(limit) <= knobs.max_page_size:
        raise cf_error(
            f"limit must be positive number and not greater than {knobs.max_page_size}", "bad_request"
        )
    now = ctx.now.timestamp()
    lo, hi = time_bounds(filter)
    lo = now - knobs.not_older_than if lo is None else lo
    hi = now if hi is None else hi
    if knobs.enforce_limits:
        if lo < now - knobs.not_older_than:
            raise cf_error(f"cannot request data older than {knobs.not_older_than}s", "bad_request")
        if hi - lo > knobs.max_duration:
            raise cf_error(
                f"query time range is too large. Time range can't be wider than {knobs.max_duration}s",
                "bad_request",
            )
    dims = selected_dimensions(info)
    keyers = [DIMENSIONS[d].key for d in dims]
    start, end, rest = split_range(filter)
    accept = compile_filter(account, rest) if rest else None
    groups: dict[tuple[Key, ...], list[Seen]] = {}
    for seen in ctx.traffic.visible(account.tag, math.floor(lo / 60), math.ceil(hi / 60), now):
        event = seen[2]
        if start <= event.minute * 60 + event.second < end and (accept is None or accept(event)):
            key = tuple(k(account, event) for k in keyers)
            groups.setdefault(key, []).append(seen)
    rows = [
        Row(
            key,
            {d: DIMENSIONS[d].render(k) for d, k in zip(dims, key, strict=True)},
            seen,
            knobs.decimal_floats,
        )
        for key, seen in sorted(groups.items())  # default order: ascending by the selected dimensions
    ]
    for spec in reversed(orderBy or []):
        stem, _, direction = spec.rpartition("_")
        rows.sort(key=_order_key(stem, dims), reverse=direction == "DESC")
    rows = rows[: int(limit)]
    if not ctx.fast_rows:
        return rows
    layout = plan(info.field_nodes, info.fragments, info.variable_values.coerced)
    ctx.pages.append((info.path.as_list(), render(rows, layout, _ROW_TYPE)))
    return []  # graphql-core completes an empty list; finish() splices the page in


def _settings(knobs: Knobs, schema: GraphQLSchema) -> dict[str, Any]:
    row = schema.get_type(_ROW_TYPE)
    assert isinstance(row, GraphQLObjectType)
    available = []
    for group in row.fields:
        sub = schema.get_type(f"{_ROW_TYPE}{group[0].upper()}{group[1:]}")
        assert isinstance(sub, GraphQLObjectType)
        available += [f"{group}.{name}" for name in sub.fields]
    return {
        "enabled": True,
        "availableFields": available,
        "maxDuration": knobs.max_duration,
        "maxNumberOfFields": knobs.max_number_of_fields,
        "maxPageSize": knobs.max_page_size,
        "notOlderThan": knobs.not_older_than,
    }


def resolve_accounts(
    _viewer: object, info: GraphQLResolveInfo[RequestContext], filter: dict[str, Any] | None = None
) -> list[Account]:
    ctx: RequestContext = info.context
    tag = (filter or {}).get("accountTag")
    account = ctx.traffic.account(tag) if isinstance(tag, str) else None
    if account is None or not ctx.credential.can_see(account.tag):
        raise cf_error("not authorized for that account", "authz")
    return [account]


def resolve_zones(
    _viewer: object,
    info: GraphQLResolveInfo[RequestContext],
    filter: dict[str, Any] | None = None,
    limit: int | None = None,
) -> list[dict[str, str]]:
    ctx: RequestContext = info.context
    spec = filter or {}
    tags = sorted(z for a in ctx.traffic.accounts if ctx.credential.can_see(a.tag) for z in a.zones)
    if spec.get("zoneTag") is not None:
        tags = [t for t in tags if t == spec["zoneTag"]]
    if spec.get("zoneTag_gt") is not None:
        tags = [t for t in tags if t > spec["zoneTag_gt"]]
    if spec.get("zoneTag_in") is not None:
        tags = [t for t in tags if t in set(spec["zoneTag_in"])]
    return [{"zoneTag": t} for t in tags[: int(limit) if limit else None]]


def load_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))

    def fields(type_name: str) -> dict[str, Any]:
        t = schema.get_type(type_name)
        assert isinstance(t, GraphQLObjectType)
        return dict(t.fields)

    fields("Query")["viewer"].resolve = lambda _root, _info: {}
    fields("viewer")["accounts"].resolve = resolve_accounts
    fields("viewer")["zones"].resolve = resolve_zones
    account = fields("account")
    account["accountTag"].resolve = lambda a, _info: a.tag
    account["settings"].resolve = lambda _a, info: {DATASET: _settings(info.context.knobs, info.schema)}
    account[DATASET].resolve = resolve_dataset
    return schema
