"""Checked rows from an answer, for any dataset of the catalogue.

Cloudflare's answers are validated before they can touch a total: a value that is not a finite,
non-negative number of the catalogue's type (the schema's), a duplicate group or a row without its
dimensions makes the whole answer malformed (it is retried later; the last good data keeps being
served).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otelbridge.catalogue import Dataset
from otelbridge.cloudflare.errors import MalformedResponse

SeriesKey = tuple[str, ...]
SumRows = dict[SeriesKey, tuple[float, ...]]
LevelRows = dict[SeriesKey, dict[str, float]]  # gauge key -> level gauge name -> newest value


@dataclass(frozen=True)
class QuantileRow:
    values: dict[str, float]  # quantile field (e.g. cpuTimeP99) -> value in the API's unit
    averages: dict[str, float]  # avg field -> value


def _number(value: Any, integer: bool, *where: object) -> float:
    """A value of the catalogue's type, finite and not negative; `where` names it in errors (joined
    only then: an answer holds 10^5 values)."""
    kind = type(value)  # JSON numbers are exactly int or float (bool is neither)
    if (kind is int or (kind is float and not integer and math.isfinite(value))) and value >= 0:
        number: float = value  # ints stay ints: integer sums are exact
        return number
    place = "".join(map(str, where))
    if kind is not int and kind is not float:
        raise MalformedResponse(f"{place}: expected a number, got {kind.__name__}")
    if integer and kind is float:
        raise MalformedResponse(f"{place}: expected an integer, got {value!r}")
    raise MalformedResponse(f"{place}: expected a finite non-negative number, got {value!r}")


def _key(
    row: Mapping[str, Any], fields: tuple[str, ...], where: str, integers: frozenset[str] = frozenset()
) -> SeriesKey:
    """The row's dimension values as strings; fields in `integers` are integers in the schema."""
    dims = row.get("dimensions")
    if not isinstance(dims, dict):
        dims = {}
    out = []
    for name in fields:
        value = dims.get(name)
        if name in integers:
            if type(value) is not int:
                raise MalformedResponse(f"{where}: missing integer dimension {name}")
            value = str(value)
        if type(value) is not str:
            raise MalformedResponse(f"{where}: missing dimension {name}")
        out.append(value)
    return tuple(out)


def _integers(dataset: Dataset) -> frozenset[str]:
    return frozenset(d.field for d in dataset.dimensions if d.type == "integer")


def _rows(answer: Any, alias: str) -> Sequence[Mapping[str, Any]]:
    # JSON objects are dicts: checked as such, an ABC check per row costs more than the row's parse
    if not isinstance(answer, list) or not all(isinstance(r, dict) for r in answer):
        raise MalformedResponse(f"{alias}: expected a list of rows")
    return answer


def _part(row: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    part = row.get(name)
    if not isinstance(part, dict):
        raise MalformedResponse(f"{where}: missing {name}")
    return part


def sum_rows(answer: Any, alias: str, dataset: Dataset, fields: tuple[str, ...]) -> SumRows:
    """Rows keyed by the counter key (`fields`: its GraphQL dimensions)."""
    out: SumRows = {}
    integers = _integers(dataset)
    columns = tuple((c.aggregate, c.field, c.type == "integer", c.source) for c in dataset.counters)
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        key = _key(row, fields, where, integers)
        if key in out:
            raise MalformedResponse(f"{where}: duplicate group {key}")
        vector = []
        for aggregate, field, integer, source in columns:
            value = row.get("count") if aggregate == "count" else _part(row, aggregate, where).get(field)
            vector.append(_number(value, integer, where, ".", source))
        out[key] = tuple(vector)
    return out


def quantile_rows(
    answer: Any, alias: str, dataset: Dataset, fields: tuple[str, ...], quantiles: tuple[str, ...]
) -> dict[SeriesKey, QuantileRow]:
    """Rows keyed by the gauge key (`fields`: its GraphQL dimensions)."""
    out: dict[SeriesKey, QuantileRow] = {}
    integers = _integers(dataset)
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        key = _key(row, fields, where, integers)
        if key in out:
            raise MalformedResponse(f"{where}: duplicate group {key}")
        q = row.get("quantiles") if dataset.quantile_gauges else {}
        avg = row.get("avg") if dataset.average_gauges else {}
        if not isinstance(q, dict) or not isinstance(avg, dict):
            raise MalformedResponse(f"{where}: missing quantiles or avg")
        values = {}
        for gauge in dataset.quantile_gauges:
            integer = gauge.type == "integer"
            for quantile in quantiles:
                name = dataset.quantile_field(gauge, quantile)
                values[name] = _number(q.get(name), integer, where, ".quantiles.", name)
        averages = {
            a.field: _number(avg.get(a.field), False, where, ".avg.", a.field) for a in dataset.average_gauges
        }
        out[key] = QuantileRow(values, averages)
    return out


def level_rows(answer: Any, alias: str, dataset: Dataset, fields: tuple[str, ...]) -> LevelRows:
    """The newest row of each gauge-key group (rows come newest first within a group)."""
    out: LevelRows = {}
    newest: dict[SeriesKey, str] = {}
    integers = _integers(dataset)
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        key = _key(row, fields, where, integers)
        (when,) = _key(row, (dataset.time_filter,), where)
        if key in newest and when <= newest[key]:
            if when == newest[key]:
                raise MalformedResponse(f"{where}: duplicate group {key} at {when}")
            continue
        newest[key] = when
        out[key] = {
            g.name: _number(
                _part(row, g.aggregate, where).get(g.field), g.type == "integer", where, ".", g.source
            )
            for g in dataset.level_gauges
        }
    return out
