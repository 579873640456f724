"""What every dataset resolver shares: the request context, Cloudflare's error shape, the
selected dimensions of a node and the `settings` answer of a dataset."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import GraphQLError, GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema

from otelbridge.simulator.auth import Credential
from otelbridge.simulator.filters import time_bounds
from otelbridge.simulator.knobs import Knobs
from otelbridge.simulator.rows import RowLike, fields, plan, render, splice

if TYPE_CHECKING:
    from otelbridge.simulator.traffic import Traffic

Row = TypeVar("Row", bound=RowLike)


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


def selected_dimensions(info: GraphQLResolveInfo[RequestContext], known: Collection[str]) -> list[str]:
    """Dimension fields selected under `dimensions` (any alias, through fragments), in order."""
    found: dict[str, None] = {}
    variables = info.variable_values.coerced
    for node in info.field_nodes:
        for group in fields(node.selection_set, info.fragments, variables):
            if group.name.value == "dimensions":
                for dim in fields(group.selection_set, info.fragments, variables):
                    if dim.name.value in known:
                        found[dim.name.value] = None
    return list(found)


def dataset_settings(
    knobs: Knobs, schema: GraphQLSchema, row_type: str, enabled: bool = True
) -> dict[str, Any]:
    """A dataset's `Settings`: its limits (from the knobs) and fields (from the schema subset)."""
    row = schema.get_type(row_type)
    assert isinstance(row, GraphQLObjectType)
    available = []
    for name in row.fields:
        sub = schema.get_type(f"{row_type}{name[0].upper()}{name[1:]}")
        if isinstance(sub, GraphQLObjectType):
            available += [f"{name}.{leaf}" for leaf in sub.fields]
        else:  # a scalar aggregate such as `count`
            available.append(name)
    return {
        "enabled": enabled,
        "availableFields": available,
        "maxDuration": knobs.max_duration,
        "maxNumberOfFields": knobs.max_number_of_fields,
        "maxPageSize": knobs.max_page_size,
        "notOlderThan": knobs.not_older_than,
    }


def query_range(ctx: RequestContext, spec: Mapping[str, Any], limit: int) -> tuple[float, float]:
    """The [lo, hi) epoch seconds a dataset query covers, after Cloudflare's limit checks."""
    knobs = ctx.knobs
    if not 0 < int(limit) <= knobs.max_page_size:
        raise cf_error(
            f"limit must be positive number and not greater than {knobs.max_page_size}", "bad_request"
        )
    now = ctx.now.timestamp()
    lo, hi = time_bounds(spec)
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
    return lo, hi


def page(
    info: GraphQLResolveInfo[RequestContext],
    rows: list[Row],
    order_by: list[str] | None,
    order_key: Callable[[str], Callable[[Row], Any]],
    limit: int,
    row_type: str,
) -> list[Row]:
    """Order (last orderBy key first, stable sorts), cut to `limit`, and render the page.

    Rows start in ascending order of the selected dimensions (Cloudflare's default order).
    On the fast path the page is rendered here and spliced in by finish(); graphql-core then
    completes an empty list."""
    for spec in reversed(order_by or []):
        stem, _, direction = spec.rpartition("_")
        rows.sort(key=order_key(stem), reverse=direction == "DESC")
    rows = rows[: int(limit)]
    ctx: RequestContext = info.context
    if not ctx.fast_rows:
        return rows
    layout = plan(info.field_nodes, info.fragments, info.variable_values.coerced)
    ctx.pages.append((info.path.as_list(), render(rows, layout, row_type)))
    return []
