"""GraphQL documents generated from the dataset catalogues.

One request per account and cycle carries every range of every dataset it needs, as aliases named
`<dataset>_<role>`; one request per group of at most 10 zones carries every zone dataset, the same
aliases under one `zones(filter: {zoneTag_in})` field per set of zones asking for the same ranges.
Sums grouped by the dataset's counter key for the settling and the open
minutes, gauges (quantiles, averages) grouped by its gauge key over the gauge window, and level
gauges grouped by the gauge key and the time dimension (the newest value of each group is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache

from graphql import DocumentNode, parse

from otelbridge.catalogue import Dataset


class Shape(Enum):
    SUMS = "sums"  # grouped by the counter key
    GAUGES = "gauges"  # quantiles and averages, grouped by the gauge key
    LEVELS = "levels"  # level gauges, grouped by the gauge key and the time dimension


@dataclass(frozen=True)
class AliasRequest:
    dataset: Dataset = field(compare=False)
    role: str  # settling, open, gauges, levels: what the rows are for
    shape: Shape
    start: datetime
    end: datetime
    after: str | None = None  # continue a full page: page key values >= this one

    @property
    def alias(self) -> str:
        return alias(self.dataset.dataset, self.role)

    def page(self, after: str) -> AliasRequest:
        return AliasRequest(self.dataset, self.role, self.shape, self.start, self.end, after)


def alias(dataset: str, role: str) -> str:
    """The response key of one dataset's rows for one role: several datasets share a request."""
    return f"{dataset}_{role}"


def time_value(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(dataset: Dataset, attributes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dataset.dimension(a).field for a in attributes)


def key_fields(dataset: Dataset, shape: Shape) -> tuple[str, ...]:
    """The GraphQL dimensions an alias of this shape groups by, in key order."""
    return _fields(dataset, dataset.counter_key if shape is Shape.SUMS else dataset.gauge_key)


def _by_aggregate(dataset: Dataset) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for level in dataset.level_gauges:
        out.setdefault(level.aggregate, []).append(level.field)
    return out


def _selection(shape: Shape, dataset: Dataset, quantiles: tuple[str, ...]) -> str:
    dims = " ".join(key_fields(dataset, shape))
    if shape is Shape.SUMS:
        sums = " ".join(c.field for c in dataset.counters if c.aggregate == "sum")
        count = " count" if any(c.aggregate == "count" for c in dataset.counters) else ""
        return f"dimensions {{ {dims} }}{count}" + (f" sum {{ {sums} }}" if sums else "")
    if shape is Shape.LEVELS:
        parts = [f"{agg} {{ {' '.join(fs)} }}" for agg, fs in _by_aggregate(dataset).items()]
        return f"dimensions {{ {dims} {dataset.time_filter} }} " + " ".join(parts)
    fields = " ".join(dataset.quantile_field(g, q) for g in dataset.quantile_gauges for q in quantiles)
    avgs = " ".join(a.field for a in dataset.average_gauges)
    # Gauges that are off are not asked for (an empty selection set is not valid GraphQL).
    return (
        f"dimensions {{ {dims} }}"
        + (f" quantiles {{ {fields} }}" if fields else "")
        + (f" avg {{ {avgs} }}" if avgs else "")
    )


def _order(shape: Shape, dataset: Dataset) -> str:
    order = [f"{f}_ASC" for f in key_fields(dataset, shape)]
    if shape is Shape.LEVELS:
        order.append(f"{dataset.time_filter}_DESC")
    return f"[{', '.join(order)}]"


Shapes = tuple[tuple[str, Dataset, Shape, bool], ...]  # (alias, dataset, shape, paged) per alias


def _aliases(shapes: Shapes, quantiles: tuple[str, ...], prefix: str = "") -> tuple[list[str], str]:
    """The variables and selections of some aliases; `prefix` keeps the variables of several
    scopes (zone fields) in one document apart."""
    variables: list[str] = []
    parts = []
    for alias, dataset, shape, paged in shapes:
        v = f"${prefix}{alias}"
        variables += [f"{v}From: Time!", f"{v}To: Time!", f"{v}Limit: uint64!"]
        time = dataset.time_filter
        page = ""
        if paged:
            variables.append(f"{v}After: string!")
            page = f", {dataset.dimension(dataset.page_key).field}_geq: {v}After"
        parts.append(
            f"{alias}: {dataset.graphql_node}("
            f"filter: {{{time}_geq: {v}From, {time}_lt: {v}To{page}}}, "
            f"limit: {v}Limit, orderBy: {_order(shape, dataset)}) "
            f"{{ {_selection(shape, dataset, quantiles)} }}"
        )
    return variables, "\n      ".join(parts)


@lru_cache(maxsize=64)
def _document(shapes: Shapes, quantiles: tuple[str, ...]) -> DocumentNode:
    variables, body = _aliases(shapes, quantiles)
    text = (
        f"query Datasets($account: string!, {', '.join(variables)}) {{\n"
        f"  viewer {{\n    accounts(filter: {{accountTag: $account}}) {{\n      {body}\n    }}\n  }}\n}}\n"
    )
    return parse(text, no_location=True)


def _shapes(requests: tuple[AliasRequest, ...]) -> Shapes:
    return tuple((r.alias, r.dataset, r.shape, r.after is not None) for r in requests)


def _alias_values(
    requests: tuple[AliasRequest, ...], limits: dict[str, int], prefix: str = ""
) -> dict[str, object]:
    variables: dict[str, object] = {}
    for r in requests:
        variables[f"{prefix}{r.alias}From"] = time_value(r.start)
        variables[f"{prefix}{r.alias}To"] = time_value(r.end)
        variables[f"{prefix}{r.alias}Limit"] = limits[r.dataset.dataset]
        if r.after is not None:
            variables[f"{prefix}{r.alias}After"] = r.after
    return variables


def account_request(
    account: str, requests: tuple[AliasRequest, ...], limits: dict[str, int], quantiles: tuple[str, ...]
) -> tuple[DocumentNode, dict[str, object]]:
    """One document for every alias; `limits` is the page size by dataset."""
    for r in requests:
        if r.dataset.scope != "account":
            raise ValueError(f"{r.dataset.dataset}: only account-scope datasets are queried by account")
    variables: dict[str, object] = {"account": account, **_alias_values(requests, limits)}
    return _document(_shapes(requests), quantiles), variables


@dataclass(frozen=True)
class ZoneField:
    """Zones asked for the same aliases over the same ranges: one `zones(filter: {zoneTag_in})`
    field of a zone request. Zones whose ledgers stand at the same minutes (the steady state)
    share one; a zone that joined later, or whose plan lacks a dataset, gets its own."""

    zones: tuple[str, ...]
    requests: tuple[AliasRequest, ...]
    limits: tuple[tuple[str, int], ...]  # page size by dataset


def zone_fields(
    wanted: dict[str, tuple[AliasRequest, ...]], limits: dict[str, dict[str, int]]
) -> tuple[ZoneField, ...]:
    """Zones grouped by identical requests (aliases, ranges, pages) and page sizes."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for zone in sorted(wanted):
        if wanted[zone]:
            ranges = tuple((r.alias, r.shape, r.start, r.end, r.after) for r in wanted[zone])
            groups.setdefault((ranges, tuple(sorted(limits[zone].items()))), []).append(zone)
    return tuple(
        ZoneField(tuple(zones), wanted[zones[0]], tuple(sorted(limits[zones[0]].items())))
        for zones in groups.values()
    )


@lru_cache(maxsize=64)
def _zone_document(fields: tuple[Shapes, ...], quantiles: tuple[str, ...]) -> DocumentNode:
    variables: list[str] = []
    bodies = []
    for i, shapes in enumerate(fields):
        names, body = _aliases(shapes, quantiles, f"z{i}_")
        variables += [f"$z{i}: [string!]", *names]
        bodies.append(
            f"    z{i}: zones(filter: {{zoneTag_in: $z{i}}}) {{\n      zoneTag\n      {body}\n    }}"
        )
    text = f"query Zones({', '.join(variables)}) {{\n  viewer {{\n" + "\n".join(bodies) + "\n  }\n}\n"
    return parse(text, no_location=True)


def zone_request(
    fields: tuple[ZoneField, ...], quantiles: tuple[str, ...]
) -> tuple[DocumentNode, dict[str, object]]:
    """One document for several zone fields, each `z<i>: zones(filter: {zoneTag_in: $z<i>})`."""
    variables: dict[str, object] = {}
    for i, f in enumerate(fields):
        for r in f.requests:
            if r.dataset.scope != "zone":
                raise ValueError(f"{r.dataset.dataset}: only zone-scope datasets are queried by zone")
        variables[f"z{i}"] = list(f.zones)
        variables.update(_alias_values(f.requests, dict(f.limits), f"z{i}_"))
    return _zone_document(tuple(_shapes(f.requests) for f in fields), quantiles), variables


def _settings_fields(nodes: tuple[str, ...]) -> str:
    return " ".join(f"{n} {{ enabled maxDuration maxPageSize notOlderThan }}" for n in dict.fromkeys(nodes))


@lru_cache(maxsize=16)
def settings_query(nodes: tuple[str, ...]) -> DocumentNode:
    """The `settings` of these GraphQL nodes (each dataset's limits for the account)."""
    return parse(
        "query Settings($account: string!) {\n  viewer { accounts(filter: {accountTag: $account}) "
        f"{{ settings {{ {_settings_fields(nodes)} }} }} }}\n}}\n",
        no_location=True,
    )


@lru_cache(maxsize=16)
def zone_settings_query(nodes: tuple[str, ...]) -> DocumentNode:
    """The `settings` of these GraphQL nodes for the zones in `$zones` (what each zone's plan offers)."""
    return parse(
        "query ZoneSettings($zones: [string!]) {\n  viewer { zones(filter: {zoneTag_in: $zones}) "
        f"{{ zoneTag settings {{ {_settings_fields(nodes)} }} }} }}\n}}\n",
        no_location=True,
    )
