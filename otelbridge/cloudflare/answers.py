"""Checked rows from a workersInvocationsAdaptive answer.

Cloudflare's answers are validated before they can touch a total: a value that is not a finite,
non-negative number of the schema's type, a duplicate group or a row without its dimensions
makes the whole answer malformed (it is retried later; the last good data keeps being served).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otelbridge.catalogue import Catalogue
from otelbridge.cloudflare.errors import MalformedResponse

SumRows = dict[tuple[str, str], tuple[float, ...]]


@dataclass(frozen=True)
class QuantileRow:
    values: dict[str, float]  # quantile field (cpuTimeP99) -> value in the API's unit
    averages: dict[str, float]  # avg field (sampleInterval) -> value


def _number(value: Any, where: str, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(f"{where}: expected a number, got {type(value).__name__}")
    if integer and not isinstance(value, int):
        raise MalformedResponse(f"{where}: expected an integer, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise MalformedResponse(f"{where}: expected a finite non-negative number, got {value!r}")
    return value


def _dimension(row: Mapping[str, Any], name: str, where: str) -> str:
    dims = row.get("dimensions")
    value = dims.get(name) if isinstance(dims, Mapping) else None
    if not isinstance(value, str):
        raise MalformedResponse(f"{where}: missing dimension {name}")
    return value


def _rows(answer: Any, alias: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(answer, list) or not all(isinstance(r, Mapping) for r in answer):
        raise MalformedResponse(f"{alias}: expected a list of rows")
    return answer


def sum_rows(answer: Any, alias: str, catalogue: Catalogue, integer_fields: frozenset[str]) -> SumRows:
    out: SumRows = {}
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        key = (_dimension(row, "scriptName", where), _dimension(row, "status", where))
        if key in out:
            raise MalformedResponse(f"{where}: duplicate group {key}")
        sums = row.get("sum")
        if not isinstance(sums, Mapping):
            raise MalformedResponse(f"{where}: missing sum")
        out[key] = tuple(
            _number(sums.get(c.field), f"{where}.sum.{c.field}", c.field in integer_fields)
            for c in catalogue.counters
        )
    return out


def quantile_rows(
    answer: Any, alias: str, catalogue: Catalogue, quantiles: tuple[str, ...]
) -> dict[str, QuantileRow]:
    out: dict[str, QuantileRow] = {}
    for i, row in enumerate(_rows(answer, alias)):
        where = f"{alias}[{i}]"
        script = _dimension(row, "scriptName", where)
        if script in out:
            raise MalformedResponse(f"{where}: duplicate script {script!r}")
        q = row.get("quantiles") if catalogue.quantile_gauges else {}
        avg = row.get("avg") if catalogue.average_gauges else {}
        if not isinstance(q, Mapping) or not isinstance(avg, Mapping):
            raise MalformedResponse(f"{where}: missing quantiles or avg")
        values = {}
        for gauge in catalogue.quantile_gauges:
            for quantile in quantiles:
                name = catalogue.quantile_field(gauge, quantile)
                values[name] = _number(q.get(name), f"{where}.quantiles.{name}", False)
        averages = {
            a.field: _number(avg.get(a.field), f"{where}.avg.{a.field}", False)
            for a in catalogue.average_gauges
        }
        out[script] = QuantileRow(values, averages)
    return out
