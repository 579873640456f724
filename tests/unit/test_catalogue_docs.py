"""The catalogue agrees with Cloudflare's schema, and docs/metrics.md is generated from it."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLObjectType, get_named_type

from otelbridge.catalogue import load
from otelbridge.cloudflare.client import load_schema
from otelbridge.docs import metrics_markdown
from tests.datasets import workers

ROOT = Path(__file__).resolve().parents[2]


def _fields(type_name: str) -> dict[str, str]:
    t = load_schema().get_type(type_name)
    assert isinstance(t, GraphQLObjectType)
    return {name: get_named_type(f.type).name for name, f in t.fields.items()}


def test_docs_are_fresh() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == metrics_markdown(load()), "regenerate with: otelbridge docs > docs/metrics.md"


def test_every_catalogue_field_exists_in_the_schema() -> None:
    catalogue = workers()
    sums = _fields("AccountWorkersInvocationsAdaptiveSum")
    quantiles = _fields("AccountWorkersInvocationsAdaptiveQuantiles")
    averages = _fields("AccountWorkersInvocationsAdaptiveAvg")
    for c in catalogue.counters:
        assert c.field in sums
        assert c.type == ("integer" if sums[c.field].startswith(("uint", "int")) else "float"), c.field
    for g in catalogue.quantile_gauges:
        for q in catalogue.available_quantiles:
            assert catalogue.quantile_field(g, q) in quantiles
    for a in catalogue.average_gauges:
        assert a.field in averages


def test_microsecond_fields_become_seconds_and_gb_seconds_stay() -> None:
    catalogue = workers()
    by_field = {c.field: c for c in catalogue.counters}
    for name in ("cpuTimeUs", "wallTime", "requestDuration"):
        assert by_field[name].unit == "s" and by_field[name].divisor == 1_000_000
    assert by_field["duration"].unit == "gigabyte_seconds" and by_field["duration"].divisor == 1
    assert by_field["duration"].api_unit == "GBy.s"
    gauges = {g.field: g for g in catalogue.quantile_gauges}
    assert gauges["duration"].divisor == 1 and gauges["cpuTime"].divisor == 1_000_000


def test_dimension_types_and_the_time_filter_agree_with_the_schema() -> None:
    catalogue = workers()
    dimensions = _fields("AccountWorkersInvocationsAdaptiveDimensions")
    for d in catalogue.dimensions:
        integer = dimensions[d.field].startswith(("uint", "int"))
        assert d.type == ("integer" if integer else "string"), d.field
    assert catalogue.time_filter in dimensions
