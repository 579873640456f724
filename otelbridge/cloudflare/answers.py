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


def _number(value: Any, where: str, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(f"{where}: expected a number, got {type(value).__name__}")
    if integer and not isinstance(value, int):
        raise MalformedResponse(f"{where}: expected an integer, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise MalformedResponse(f"{where}: expected a finite non-negative number, got {value!r}")
    return value


def _key(
    row: Mapping[str, Any], fields: tuple[str, ...], where: str, integers: frozenset[str] = frozenset()
) -> SeriesKey:
    """The row's dimension values as strings; fields in `integers` are integers in the schema."""
    dims = row.get("dimensions")
    out = []
    for name in fields:
        value = dims.get(name) if isinstance(dims, Mapping) else None
        if name in integers:
            if not isinstance(value, int) or isinstance(value, bool):
                raise MalformedResponse(f"{where}: missing integer dimension {name}")
            value = str(value)
        if not isinstance(value, str):
            raise MalformedResponse(f"{where}: missing dimension {name}")
        out.append(value)
    return tuple(out)


def _integers(dataset: Dataset) -> frozenset[str]:
    return frozenset(d.field for d in dataset.dimensions if d.type == "integer")


def _rows(answer: Any, alias: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(answer, list) or not all(isinstance(r, Mapping) for r in answer):
        raise MalformedResponse(f"{alias}: expected a list of rows")
    return answer


def _part(row: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    part = row.get(name)
    if not isinstance(part, Mapping):
        raise MalformedResponse(f"{where}: missing {name}")
    return part


def sum_rows(answer: Any, alias: str, dataset: Dataset, fields: tuple[str, ...]) -> SumRows:
    """Rows keyed by the counter key (`fields`: its GraphQL dimensions)."""
    out: SumRows = {}
    integers = _integers(dataset)
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        key = _key(row, fields, where, integers)
        if key in out:
            raise MalformedResponse(f"{where}: duplicate group {key}")
        vector = []
        for c in dataset.counters:
            integer = c.type == "integer"
            if c.aggregate == "count":
                vector.append(_number(row.get("count"), f"{where}.count", integer))
            else:
                part = _part(row, c.aggregate, where)
                vector.append(_number(part.get(c.field), f"{where}.{c.source}", integer))
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
        if not isinstance(q, Mapping) or not isinstance(avg, Mapping):
            raise MalformedResponse(f"{where}: missing quantiles or avg")
        values = {}
        for gauge in dataset.quantile_gauges:
            integer = gauge.type == "integer"
            for quantile in quantiles:
                name = dataset.quantile_field(gauge, quantile)
                values[name] = _number(q.get(name), f"{where}.quantiles.{name}", integer)
        averages = {
            a.field: _number(avg.get(a.field), f"{where}.avg.{a.field}", False)
            for a in dataset.average_gauges
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
                _part(row, g.aggregate, where).get(g.field), f"{where}.{g.source}", g.type == "integer"
            )
            for g in dataset.level_gauges
        }
    return out
