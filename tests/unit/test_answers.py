"""Checking Cloudflare's rows before they can touch a total: every way a row can be wrong is
refused as malformed, naming where; good rows come through with their exact values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from otelbridge.cloudflare.answers import QuantileRow, quantile_rows, sum_rows
from otelbridge.cloudflare.errors import MalformedResponse
from tests.datasets import workers

CATALOGUE = workers()
COUNTERS = [c.field for c in CATALOGUE.counters]
INTEGER = frozenset(c.field for c in CATALOGUE.counters if c.type == "integer")
QUANTILES = ("0.5", "0.99")


def sum_row(script: str = "api", status: str = "success", base: float = 1) -> dict[str, Any]:
    values = {f: (int(base) + i if f in INTEGER else base + i + 0.25) for i, f in enumerate(COUNTERS)}
    return {"dimensions": {"scriptName": script, "status": status}, "sum": values}


def quantile_row(script: str = "api") -> dict[str, Any]:
    fields = [CATALOGUE.quantile_field(g, q) for g in CATALOGUE.quantile_gauges for q in QUANTILES]
    return {
        "dimensions": {"scriptName": script},
        "quantiles": {f: 10.0 + i for i, f in enumerate(fields)},
        "avg": {a.field: 3.0 for a in CATALOGUE.average_gauges},
    }


def sums(rows: Any) -> dict[tuple[str, str], tuple[float, ...]]:
    return sum_rows(rows, "open", CATALOGUE, ("scriptName", "status"))


def test_good_sum_rows_come_through_exactly() -> None:
    rows = [
        sum_row("api", "success", 5),
        sum_row("api", "clientDisconnected", 0),
        sum_row("cron", "success", 7),
    ]
    got = sums(rows)
    assert got == {
        ("api", "success"): tuple(rows[0]["sum"][f] for f in COUNTERS),
        ("api", "clientDisconnected"): tuple(rows[1]["sum"][f] for f in COUNTERS),
        ("cron", "success"): tuple(rows[2]["sum"][f] for f in COUNTERS),
    }
    assert sums([]) == {}


def test_zero_and_integral_floats_in_float_fields_are_numbers() -> None:
    row = sum_row()
    row["sum"]["requests"] = 0
    row["sum"]["duration"] = 0
    row["sum"]["requestDuration"] = 12
    got = sums([row])[("api", "success")][COUNTERS.index("requestDuration")]
    assert got == 12 or got == 12 * 2**1074  # float fields are held exactly, in units of 2**-1074


def spoiled(row: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """The row with the value at a dotted path replaced (or deleted, for DELETE)."""
    *parents, leaf = path.split(".")
    node: Any = row
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return row


DELETE = object()
BAD_SUMS = {
    "string": ("sum.requests", "12", "open[1].sum.requests: expected a number"),
    "bool": ("sum.errors", True, "open[1].sum.errors: expected a number"),
    "null": ("sum.cpuTimeUs", None, "open[1].sum.cpuTimeUs: expected a number"),
    "missing value": ("sum.duration", DELETE, "open[1].sum.duration: expected a number"),
    "negative": ("sum.requests", -1, "open[1].sum.requests: expected a finite non-negative"),
    "negative float": ("sum.duration", -0.5, "open[1].sum.duration: expected a finite non-negative"),
    "infinite": ("sum.duration", math.inf, "open[1].sum.duration: expected a finite non-negative"),
    "nan": ("sum.requestDuration", math.nan, "open[1].sum.requestDuration: expected a finite non-negative"),
    "float in an integer field": ("sum.requests", 1.5, "open[1].sum.requests: expected an integer"),
    "integral float in an integer field": ("sum.requests", 2.0, "open[1].sum.requests: expected an integer"),
    "no sum": ("sum", DELETE, "open[1]: missing sum"),
    "sum not an object": ("sum", [1, 2], "open[1]: missing sum"),
    "no dimensions": ("dimensions", DELETE, "open[1]: missing dimension scriptName"),
    "dimensions not an object": ("dimensions", "api", "open[1]: missing dimension scriptName"),
    "script not a string": ("dimensions.scriptName", 42, "open[1]: missing dimension scriptName"),
    "no status": ("dimensions.status", DELETE, "open[1]: missing dimension status"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUMS))
def test_bad_sum_rows_are_malformed(case: str) -> None:
    path, value, message = BAD_SUMS[case]
    with pytest.raises(MalformedResponse) as refused:
        sums([sum_row("other"), spoiled(sum_row(), path, value)])
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("rows", [None, {"rows": []}, [sum_row(), "row"], "rows"])
def test_rows_that_are_not_a_list_of_objects_are_malformed(rows: Any) -> None:
    with pytest.raises(MalformedResponse, match="open: expected a list of rows"):
        sums(rows)


def test_a_duplicate_group_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match=r"open\[2\]: duplicate group \('api', 'success'\)"):
        sums([sum_row(), sum_row("api", "clientDisconnected"), sum_row(base=3)])


def quantiles(rows: Any) -> dict[str, QuantileRow]:
    return {
        key[0]: row
        for key, row in quantile_rows(rows, "quantiles", CATALOGUE, ("scriptName",), QUANTILES).items()
    }


def test_good_quantile_rows_come_through_exactly() -> None:
    rows = [quantile_row("api"), quantile_row("cron")]
    rows[1]["quantiles"]["cpuTimeP99"] = 0
    got = quantiles(rows)
    assert got == {
        "api": QuantileRow(rows[0]["quantiles"], {"sampleInterval": 3.0}),
        "cron": QuantileRow(rows[1]["quantiles"], {"sampleInterval": 3.0}),
    }


def test_only_the_asked_quantiles_are_read() -> None:
    row = quantile_row()
    row["quantiles"]["cpuTimeP75"] = "not asked, not checked"
    assert "cpuTimeP75" not in quantiles([row])["api"].values


BAD_QUANTILES = {
    "null quantile": ("quantiles.cpuTimeP99", None, "quantiles[1].quantiles.cpuTimeP99: expected a number"),
    "negative quantile": (
        "quantiles.cpuTimeP50",
        -1.0,
        "quantiles[1].quantiles.cpuTimeP50: expected a finite",
    ),
    "missing average": ("avg.sampleInterval", DELETE, "quantiles[1].avg.sampleInterval: expected a number"),
    "infinite average": (
        "avg.sampleInterval",
        math.inf,
        "quantiles[1].avg.sampleInterval: expected a finite",
    ),
    "no quantiles": ("quantiles", DELETE, "quantiles[1]: missing quantiles or avg"),
    "no avg": ("avg", DELETE, "quantiles[1]: missing quantiles or avg"),
    "no script": ("dimensions", DELETE, "quantiles[1]: missing dimension scriptName"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUANTILES))
def test_bad_quantile_rows_are_malformed(case: str) -> None:
    path, value, message = BAD_QUANTILES[case]
    with pytest.raises(MalformedResponse) as refused:
        quantiles([quantile_row("other"), spoiled(quantile_row(), path, value)])
    assert str(refused.value).startswith(message)


def test_a_duplicate_gauge_group_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match=r"quantiles\[1\]: duplicate group \('api',\)"):
        quantiles([quantile_row(), quantile_row()])
    with pytest.raises(MalformedResponse, match="quantiles: expected a list of rows"):
        quantiles({"api": quantile_row()})
