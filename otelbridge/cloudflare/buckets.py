"""Sums and gauges per time bucket (datetimeMinute, datetimeHour, ...), for importing history.

The live poller asks for sums over a range; history needs them per minute (or per five minutes, per
hour), so these queries add a time bucket dimension to the group-by and order by it. A full page
continues from its last bucket (rows of that bucket are asked again: it may continue on the next
page), so one query covers up to maxDuration and each page up to maxPageSize groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLSchema, get_named_type, parse

from otelbridge.catalogue import Dataset
from otelbridge.cloudflare import errors
from otelbridge.cloudflare.answers import SeriesKey, quantile_rows, sum_rows
from otelbridge.cloudflare.client import CloudflareClient
from otelbridge.cloudflare.queries import Shape, key_fields, time_value

# Bucket dimensions Cloudflare's adaptive datasets offer, by their width.
BUCKETS = {
    timedelta(minutes=1): "datetimeMinute",
    timedelta(minutes=5): "datetimeFiveMinutes",
    timedelta(minutes=15): "datetimeFifteenMinutes",
    timedelta(hours=1): "datetimeHour",
}


def bucket_dimensions(schema: GraphQLSchema, dataset: Dataset) -> dict[timedelta, str]:
    """The bucket dimensions this dataset's node has in the schema, by width."""
    scope = schema.get_type(dataset.scope)
    node = getattr(scope, "fields", {}).get(dataset.graphql_node)
    if node is None:
        return {}
    dims = getattr(get_named_type(node.type), "fields", {}).get("dimensions")
    names = set(getattr(get_named_type(dims.type), "fields", {})) if dims is not None else set()
    return {width: name for width, name in BUCKETS.items() if name in names}


def widest_bucket(available: Mapping[timedelta, str], step: timedelta) -> tuple[timedelta, str] | None:
    """The widest bucket that divides `step` (rows of several buckets are added up per step)."""
    fitting = [(w, n) for w, n in available.items() if step % w == timedelta(0)]
    return max(fitting) if fitting else None


Page = tuple[list[tuple[datetime, dict[SeriesKey, Any]]], datetime]  # buckets and rows, where to go on


@dataclass(frozen=True)
class BucketQuery:
    dataset: Dataset
    shape: Shape  # SUMS (counter key) or GAUGES (gauge key: quantiles and averages)
    bucket: str  # the bucket dimension
    start: datetime
    end: datetime


@lru_cache(maxsize=64)
def _document(dataset: Dataset, shape: Shape, bucket: str, quantiles: tuple[str, ...]) -> DocumentNode:
    keys = key_fields(dataset, shape)
    if shape is Shape.SUMS:
        sums = " ".join(c.field for c in dataset.counters if c.aggregate == "sum")
        count = " count" if any(c.aggregate == "count" for c in dataset.counters) else ""
        values = count + (f" sum {{ {sums} }}" if sums else "")
    else:
        fields = " ".join(dataset.quantile_field(g, q) for g in dataset.quantile_gauges for q in quantiles)
        avgs = " ".join(a.field for a in dataset.average_gauges)
        values = (f" quantiles {{ {fields} }}" if fields else "") + (f" avg {{ {avgs} }}" if avgs else "")
    order = ", ".join(f"{f}_ASC" for f in (bucket, *keys))
    time = dataset.time_filter
    scope = (
        "accounts(filter: {accountTag: $scope})"
        if dataset.scope == "account"
        else ("zones(filter: {zoneTag: $scope})")
    )
    text = (
        "query History($scope: string!, $from: Time!, $to: Time!, $limit: uint64!) {\n"
        f"  viewer {{ {scope} {{\n"
        f"    rows: {dataset.graphql_node}(filter: {{{time}_geq: $from, {time}_lt: $to}}, limit: $limit, "
        f"orderBy: [{order}]) {{ dimensions {{ {bucket} {' '.join(keys)} }}{values} }}\n"
        "  } }\n}\n"
    )
    return parse(text, no_location=True)


class BucketClient(CloudflareClient):
    """A CloudflareClient that also reads rows per time bucket."""

    @property
    def schema(self) -> GraphQLSchema:
        return self._schema

    async def page(
        self, scope: str, query: BucketQuery, start: datetime, page_size: int, quantiles: tuple[str, ...]
    ) -> Page:
        """One request: the complete buckets of [start, query.end) it brought, in time order, with
        rows by key (vectors for SUMS, QuantileRows for GAUGES), and where the next page starts
        (query.end when done). Buckets without rows are not listed."""
        document = _document(query.dataset, query.shape, query.bucket, quantiles)
        fields = (query.bucket, *key_fields(query.dataset, query.shape))
        variables: dict[str, object] = {
            "scope": scope,
            "from": time_value(start),
            "to": time_value(query.end),
            "limit": page_size,
        }
        node = await self._scope_node(query.dataset, scope, document, variables)
        raw = node.get("rows")
        if query.shape is Shape.SUMS:
            rows: dict[SeriesKey, Any] = sum_rows(raw, "rows", query.dataset, fields)
        else:
            rows = quantile_rows(raw, "rows", query.dataset, fields, quantiles)
        by_bucket: dict[datetime, dict[SeriesKey, Any]] = {}
        for key, value in rows.items():
            by_bucket.setdefault(_parse_time(key[0]), {})[key[1:]] = value
        ordered = sorted(by_bucket)
        if not (isinstance(raw, list) and len(raw) >= page_size):
            return [(b, by_bucket[b]) for b in ordered], query.end
        if len(ordered) < 2:
            raise errors.QueryRejected(
                f"{query.dataset.dataset}: one {query.bucket} has more groups than a page holds"
            )
        # The last bucket may continue on the next page: it is asked again from its start.
        return [(b, by_bucket[b]) for b in ordered[:-1]], ordered[-1]

    async def _scope_node(
        self, dataset: Dataset, scope: str, document: DocumentNode, variables: dict[str, object]
    ) -> Mapping[str, Any]:
        if dataset.scope == "account":
            node: Mapping[str, Any] = await self._account_node(scope, document, variables)
            return node
        data = await self._execute(document, variables)
        viewer = data.get("viewer")
        nodes = viewer.get("zones") if isinstance(viewer, Mapping) else None
        if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], Mapping):
            raise errors.MalformedResponse("expected exactly one zone node")
        return nodes[0]


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise errors.MalformedResponse(f"not a time: {text[:40]!r}") from None
