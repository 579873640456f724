"""GraphQL documents generated from the dataset catalogues.

One request per account and cycle carries every range of every dataset it needs, as aliases named
`<dataset>_<role>`: sums grouped by the dataset's counter key for the settling and the open
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


@lru_cache(maxsize=64)
def _document(
    shapes: tuple[tuple[str, Dataset, Shape, bool], ...], quantiles: tuple[str, ...]
) -> DocumentNode:
    variables = ["$account: string!"]
    parts = []
    for alias, dataset, shape, paged in shapes:
        variables += [f"${alias}From: Time!", f"${alias}To: Time!", f"${alias}Limit: uint64!"]
        time = dataset.time_filter
        page = ""
        if paged:
            variables.append(f"${alias}After: string!")
            page = f", {dataset.dimension(dataset.page_key).field}_geq: ${alias}After"
        parts.append(
            f"{alias}: {dataset.graphql_node}("
            f"filter: {{{time}_geq: ${alias}From, {time}_lt: ${alias}To{page}}}, "
            f"limit: ${alias}Limit, orderBy: {_order(shape, dataset)}) "
            f"{{ {_selection(shape, dataset, quantiles)} }}"
        )
    body = "\n      ".join(parts)
    text = (
        f"query Datasets({', '.join(variables)}) {{\n"
        f"  viewer {{\n    accounts(filter: {{accountTag: $account}}) {{\n      {body}\n    }}\n  }}\n}}\n"
    )
    return parse(text)


def account_request(
    account: str, requests: tuple[AliasRequest, ...], limits: dict[str, int], quantiles: tuple[str, ...]
) -> tuple[DocumentNode, dict[str, object]]:
    """One document for every alias; `limits` is the page size by dataset."""
    for r in requests:
        if r.dataset.scope != "account":
            raise ValueError(f"{r.dataset.dataset}: only account-scope datasets are queried by account")
    shapes = tuple((r.alias, r.dataset, r.shape, r.after is not None) for r in requests)
    variables: dict[str, object] = {"account": account}
    for r in requests:
        variables[f"{r.alias}From"] = time_value(r.start)
        variables[f"{r.alias}To"] = time_value(r.end)
        variables[f"{r.alias}Limit"] = limits[r.dataset.dataset]
        if r.after is not None:
            variables[f"{r.alias}After"] = r.after
    return _document(shapes, quantiles), variables


@lru_cache(maxsize=16)
def settings_query(nodes: tuple[str, ...]) -> DocumentNode:
    """The `settings` of these GraphQL nodes (each dataset's limits for the account)."""
    fields = " ".join(f"{n} {{ enabled maxDuration maxPageSize notOlderThan }}" for n in dict.fromkeys(nodes))
    return parse(
        "query Settings($account: string!) {\n"
        f"  viewer {{ accounts(filter: {{accountTag: $account}}) {{ settings {{ {fields} }} }} }}\n}}\n"
    )
