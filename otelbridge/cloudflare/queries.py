"""GraphQL documents for workersInvocationsAdaptive, generated from the metric catalogue.

One request per account and cycle carries every range it needs as aliases of the same dataset:
sums grouped by script and status for the settling and the open minutes, and quantiles grouped
by script for the quantile window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache

from graphql import DocumentNode, parse

from otelbridge.catalogue import Catalogue


class Shape(Enum):
    SUMS = "sums"  # grouped by scriptName, status
    QUANTILES = "quantiles"  # grouped by scriptName


@dataclass(frozen=True)
class AliasRequest:
    alias: str
    shape: Shape
    start: datetime
    end: datetime
    after: str | None = None  # continue a full page: scripts >= this name


def time_value(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selection(shape: Shape, catalogue: Catalogue, quantiles: tuple[str, ...]) -> str:
    if shape is Shape.SUMS:
        sums = " ".join(c.field for c in catalogue.counters)
        return f"dimensions {{ scriptName status }} sum {{ {sums} }}"
    fields = " ".join(catalogue.quantile_field(g, q) for g in catalogue.quantile_gauges for q in quantiles)
    avgs = " ".join(a.field for a in catalogue.average_gauges)
    # Gauges that are off are not asked for (an empty selection set is not valid GraphQL).
    return (
        "dimensions { scriptName }"
        + (f" quantiles {{ {fields} }}" if fields else "")
        + (f" avg {{ {avgs} }}" if avgs else "")
    )


def _order(shape: Shape) -> str:
    return "[scriptName_ASC, status_ASC]" if shape is Shape.SUMS else "[scriptName_ASC]"


@lru_cache(maxsize=64)
def _document(
    shapes: tuple[tuple[str, Shape, bool], ...], catalogue: Catalogue, quantiles: tuple[str, ...]
) -> DocumentNode:
    variables = ["$account: string!", "$limit: uint64!"]
    parts = []
    for alias, shape, paged in shapes:
        variables += [f"${alias}From: Time!", f"${alias}To: Time!"]
        page = ""
        if paged:
            variables.append(f"${alias}After: string!")
            page = f", scriptName_geq: ${alias}After"
        parts.append(
            f"{alias}: {catalogue.dataset}("
            f"filter: {{datetime_geq: ${alias}From, datetime_lt: ${alias}To{page}}}, "
            f"limit: $limit, orderBy: {_order(shape)}) {{ {_selection(shape, catalogue, quantiles)} }}"
        )
    body = "\n      ".join(parts)
    text = (
        f"query Workers({', '.join(variables)}) {{\n"
        f"  viewer {{\n    accounts(filter: {{accountTag: $account}}) {{\n      {body}\n    }}\n  }}\n}}\n"
    )
    return parse(text)


def workers_request(
    account: str,
    requests: tuple[AliasRequest, ...],
    limit: int,
    catalogue: Catalogue,
    quantiles: tuple[str, ...],
) -> tuple[DocumentNode, dict[str, object]]:
    shapes = tuple((r.alias, r.shape, r.after is not None) for r in requests)
    variables: dict[str, object] = {"account": account, "limit": limit}
    for r in requests:
        variables[f"{r.alias}From"] = time_value(r.start)
        variables[f"{r.alias}To"] = time_value(r.end)
        if r.after is not None:
            variables[f"{r.alias}After"] = r.after
    return _document(shapes, catalogue, quantiles), variables


SETTINGS_QUERY = parse(
    """
query Settings($account: string!) {
  viewer {
    accounts(filter: {accountTag: $account}) {
      settings { workersInvocationsAdaptive { enabled maxDuration maxPageSize notOlderThan } }
    }
  }
}
"""
)
