"""GraphQL execution against otelbridge's Cloudflare schema subset, with Cloudflare's group-by semantics."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
)

from otelbridge.simulator import events as ev
from otelbridge.simulator.datasets import ACCOUNT_DATASETS, SPECS, ZONE_DATASETS
from otelbridge.simulator.events import Seen
from otelbridge.simulator.execution import (
    RequestContext,
    cf_error,
    dataset_settings,
    page,
    query_range,
    selected_dimensions,
)
from otelbridge.simulator.filters import DIMENSIONS, Key, compile_filter, split_range
from otelbridge.simulator.groups import ZoneView, resolve_group_dataset, resolve_zones
from otelbridge.simulator.traffic import Account

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "cloudflare" / "schema.graphql"
DATASET = "workersInvocationsAdaptive"
_ROW_TYPE = "AccountWorkersInvocationsAdaptive"


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
    now = ctx.now.timestamp()
    lo, hi = query_range(ctx, filter, limit)
    dims = selected_dimensions(info, DIMENSIONS)
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
    return page(info, rows, orderBy, lambda stem: _order_key(stem, dims), limit, _ROW_TYPE)


def resolve_accounts(
    _viewer: object, info: GraphQLResolveInfo[RequestContext], filter: dict[str, Any] | None = None
) -> list[Account]:
    ctx: RequestContext = info.context
    tag = (filter or {}).get("accountTag")
    account = ctx.traffic.account(tag) if isinstance(tag, str) else None
    if account is None or not ctx.credential.can_see(account.tag):
        raise cf_error("not authorized for that account", "authz")
    return [account]


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
    account["settings"].resolve = _account_settings
    account[DATASET].resolve = resolve_dataset
    zone = fields("zone")
    zone["zoneTag"].resolve = lambda z, _info: z.zone.tag
    zone["settings"].resolve = _zone_settings
    for name, spec in SPECS.items():
        (zone if spec.scope == "zone" else account)[name].resolve = resolve_group_dataset(spec)
    return schema


def _account_settings(_account: Account, info: GraphQLResolveInfo[RequestContext]) -> dict[str, Any]:
    knobs = info.context.knobs
    out = {DATASET: dataset_settings(knobs, info.schema, _ROW_TYPE)}
    for name in ACCOUNT_DATASETS:
        out[name] = dataset_settings(knobs, info.schema, SPECS[name].row_type)
    return out


def _zone_settings(view: ZoneView, info: GraphQLResolveInfo[RequestContext]) -> dict[str, Any]:
    knobs = info.context.knobs
    return {
        name: dataset_settings(knobs, info.schema, SPECS[name].row_type, name not in view.zone.disabled)
        for name in ZONE_DATASETS
    }
