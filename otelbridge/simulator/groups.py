"""Resolvers of the zone and developer-platform datasets: filter, group by the selected
dimensions, aggregate, order, limit; plus `viewer.zones` with Cloudflare's 10-zone limit and
the per-zone plan check."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from graphql import GraphQLResolveInfo

from otelbridge.simulator.analytics import Seen, aggregate
from otelbridge.simulator.datasets import INT_DIMENSIONS, SPECS, DatasetSpec, Record
from otelbridge.simulator.execution import RequestContext, cf_error, page, query_range, selected_dimensions
from otelbridge.simulator.filters import TIME_DIMENSIONS, Key, compare, split_key, split_range
from otelbridge.simulator.rows import fields
from otelbridge.simulator.world import Zone

MAX_ZONES = 10  # zones one query may name
TOO_MANY_ZONES = "in combination, your request queries too many nodes, zones and accounts"


@dataclass(frozen=True)
class ZoneView:
    """A zone as the `zone` GraphQL type resolves it."""

    account: str
    zone: Zone


def no_access(zone_tag: str) -> str:
    return f"zone '{zone_tag}' does not have access to the path"


def _time_key(name: str) -> Callable[[Record], Key]:
    bucket = TIME_DIMENSIONS[name].bucket
    if name == "date":
        return lambda r: r.minute // 1440
    if bucket == 1:
        return lambda r: r.minute * 60 + r.second
    minutes = bucket // 60
    return lambda r: r.minute // minutes * minutes * 60


def _dimension_key(spec: DatasetSpec, name: str) -> Callable[[Record], Key]:
    if name in TIME_DIMENSIONS:
        return _time_key(name)
    i = spec.dimensions.index(name)
    return lambda r: r.dims[i]


def _parse(name: str) -> Callable[[Any], Key]:
    if name in TIME_DIMENSIONS:
        return TIME_DIMENSIONS[name].parse
    return int if name in INT_DIMENSIONS else str


def _render(name: str, key: Key) -> str | int:
    return TIME_DIMENSIONS[name].render(key) if name in TIME_DIMENSIONS else key


RecordTest = Callable[[Record], bool]


def _combine(subs: list[RecordTest], every: bool) -> RecordTest:
    if every:
        return lambda r: all(p(r) for p in subs)
    return lambda r: any(p(r) for p in subs)


def _check(key: Callable[[Record], Key], test: Callable[[Key], bool]) -> RecordTest:
    return lambda r: test(key(r))


def compile_record_filter(spec: DatasetSpec, filter: Mapping[str, Any]) -> RecordTest:
    """A predicate over records for one filter object (keys AND-ed; AND/OR lists nest)."""
    checks: list[RecordTest] = []
    for field_name, raw in filter.items():
        if raw is None:
            continue
        if field_name in ("AND", "OR"):
            checks.append(_combine([compile_record_filter(spec, s) for s in raw], field_name == "AND"))
            continue
        name, op = split_key(field_name)
        checks.append(_check(_dimension_key(spec, name), compare(_parse(name), op, raw)))
    return _combine(checks, True)


class GroupRow:
    """One group of records; its aggregates are computed once, when first read."""

    def __init__(self, spec: DatasetSpec, key: tuple[Key, ...], dimensions: dict[str, Any], seen: list[Seen]):
        self.spec = spec
        self.key = key
        self.dimensions = dimensions
        self.seen = seen

    @cached_property
    def aggregates(self) -> dict[str, Any]:
        return aggregate(self.spec, self.seen)

    def __getattr__(self, name: str) -> Any:  # count, sum, max, avg
        if name in ("count", "sum", "max", "avg"):
            return self.aggregates[name]
        raise AttributeError(name)


def _order_value(row: GroupRow, stem: str, dims: list[str]) -> Any:
    if stem in dims:
        return row.key[dims.index(stem)]
    if stem in TIME_DIMENSIONS or stem in row.spec.dimensions:
        raise cf_error(f"orderBy {stem} requires selecting dimensions {{ {stem} }}", "bad_request")
    if stem == "count":
        return row.count
    group, _, leaf = stem.partition("_")
    return getattr(row, group)[leaf]


def _order_key(stem: str, dims: list[str]) -> Callable[[GroupRow], Any]:
    return lambda row: _order_value(row, stem, dims)


def resolve_group_dataset(spec: DatasetSpec) -> Callable[..., list[GroupRow]]:
    def resolve(
        parent: Any,
        info: GraphQLResolveInfo[RequestContext],
        filter: dict[str, Any],
        limit: int,
        orderBy: list[str] | None = None,
    ) -> list[GroupRow]:
        ctx: RequestContext = info.context
        if isinstance(parent, ZoneView):
            if spec.name in parent.zone.disabled:
                raise cf_error(no_access(parent.zone.tag), "authz")
            scope = parent.zone.tag
        else:
            scope = parent.tag
        lo, hi = query_range(ctx, filter, limit)
        dims = selected_dimensions(info, (*spec.dimensions, *spec.time_dimensions))
        keyers = [_dimension_key(spec, d) for d in dims]
        start, end, rest = split_range(filter)
        accept = compile_record_filter(spec, rest) if rest else None
        analytics = ctx.traffic.analytics
        groups: dict[tuple[Key, ...], list[Seen]] = {}
        now = ctx.now.timestamp()
        for seen in analytics.visible(spec.name, scope, math.floor(lo / 60), math.ceil(hi / 60), now):
            record = seen[2]
            if start <= record.minute * 60 + record.second < end and (accept is None or accept(record)):
                groups.setdefault(tuple(k(record) for k in keyers), []).append(seen)
        rows = [
            GroupRow(spec, key, {d: _render(d, k) for d, k in zip(dims, key, strict=True)}, seen)
            for key, seen in sorted(groups.items())
        ]
        return page(info, rows, orderBy, lambda stem: _order_key(stem, dims), limit, spec.row_type)

    return resolve


def _asks_for_datasets(info: GraphQLResolveInfo[RequestContext]) -> bool:
    variables = info.variable_values.coerced
    return any(
        f.name.value in SPECS
        for node in info.field_nodes
        for f in fields(node.selection_set, info.fragments, variables)
    )


def resolve_zones(
    _viewer: object,
    info: GraphQLResolveInfo[RequestContext],
    filter: dict[str, Any] | None = None,
    limit: int | None = None,
) -> list[ZoneView]:
    """Zones the credential can see, filtered; at most 10 when any dataset is asked of them."""
    ctx: RequestContext = info.context
    spec = filter or {}
    analytics = ctx.traffic.analytics
    views = sorted(
        (
            ZoneView(a.tag, found[1])
            for a in ctx.traffic.accounts
            if ctx.credential.can_see(a.tag)
            for tag in ctx.traffic.zones(a)
            if (found := analytics.zone(tag)) is not None
        ),
        key=lambda v: v.zone.tag,
    )
    if spec.get("zoneTag") is not None:
        views = [v for v in views if v.zone.tag == spec["zoneTag"]]
    if spec.get("zoneTag_gt") is not None:
        views = [v for v in views if v.zone.tag > spec["zoneTag_gt"]]
    if spec.get("zoneTag_in") is not None:
        views = [v for v in views if v.zone.tag in set(spec["zoneTag_in"])]
    views = views[: int(limit) if limit else None]
    if len(views) > MAX_ZONES and _asks_for_datasets(info):
        raise cf_error(TOO_MANY_ZONES, "bad_request")
    return views
