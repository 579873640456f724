"""Every dataset's catalogue agrees with Cloudflare's schema (fields, value types, units from the
field descriptions), and the lean default stays small: high-cardinality attributes are never on."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from graphql import GraphQLField, GraphQLInputObjectType, GraphQLObjectType, get_named_type

from otelbridge.catalogue import CatalogueError, Dataset, DatasetChoice, MetricChoice, load, parse_dataset
from otelbridge.cloudflare.client import load_schema
from otelbridge.docs import series_per_group
from otelbridge.poller import keep_levels
from otelbridge.windows import MINUTE

ROOT = Path(__file__).resolve().parents[2]
DATASETS = load().datasets
SCHEMA = load_schema()
# Dimensions with one value per client, path, network or object: never exported by default.
UNBOUNDED = re.compile(r"(?i)ip$|path|asn|objectid|useragent|rayname")
LEAN_PER_RESOURCE = 4  # series per bucket, database, namespace, queue or script, one value each


def _object(name: str) -> GraphQLObjectType:
    t = SCHEMA.get_type(name)
    assert isinstance(t, GraphQLObjectType), name
    return t


def row_type(dataset: Dataset) -> GraphQLObjectType:
    node = _object(dataset.scope).fields[dataset.graphql_node]
    named = get_named_type(node.type)
    assert isinstance(named, GraphQLObjectType)
    return named


def field(dataset: Dataset, aggregate: str, name: str) -> GraphQLField:
    """A field of the row (`count`) or of one of its aggregates (`sum`, `max`, `avg`, `dimensions`)."""
    row = row_type(dataset)
    if aggregate == "count":
        return row.fields["count"]
    part = get_named_type(row.fields[aggregate].type)
    assert isinstance(part, GraphQLObjectType)
    assert name in part.fields, f"{dataset.dataset}: {aggregate}.{name} is not in the schema"
    return part.fields[name]


def is_integer(f: GraphQLField) -> bool:
    return get_named_type(f.type).name.startswith(("uint", "int"))


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.dataset)
def test_fields_and_value_types_are_the_schemas(dataset: Dataset) -> None:
    for c in dataset.counters:
        assert c.type == ("integer" if is_integer(field(dataset, c.aggregate, c.field)) else "float"), c.name
    for g in dataset.level_gauges:
        assert g.type == ("integer" if is_integer(field(dataset, g.aggregate, g.field)) else "float"), g.name
    for a in dataset.average_gauges:
        field(dataset, "avg", a.field)
    for d in dataset.dimensions:
        assert d.type == ("integer" if is_integer(field(dataset, "dimensions", d.field)) else "string"), (
            d.field
        )
    field(dataset, "dimensions", dataset.time_filter)
    filters = get_named_type(row_type_filter(dataset))
    assert isinstance(filters, GraphQLInputObjectType)
    assert {f"{dataset.time_filter}_geq", f"{dataset.time_filter}_lt"} <= set(filters.fields)


def row_type_filter(dataset: Dataset) -> object:
    return _object(dataset.scope).fields[dataset.graphql_node].args["filter"].type


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.dataset)
def test_units_follow_the_field_descriptions(dataset: Dataset) -> None:
    for m in (*dataset.counters, *dataset.level_gauges):
        text = (field(dataset, m.aggregate, m.field).description or "").lower()
        if m.api_unit == "us" or "microsecond" in text:
            assert (m.api_unit, m.unit, m.divisor) == ("us", "s", 1_000_000), m.name
        elif m.api_unit == "GBy.s" or "gb*s" in text:
            assert (m.unit, m.divisor) == ("gigabyte_seconds", 1), m.name  # a billing quantity, not time
        elif m.api_unit == "By" or "bytes" in text or "size" in text:
            assert (m.api_unit, m.unit, m.divisor) == ("By", "By", 1), m.name
        else:
            assert m.unit.startswith("{") and m.divisor == 1, m.name  # counts


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.dataset)
def test_lean_is_small_and_unbounded_attributes_are_never_on_by_default(dataset: Dataset) -> None:
    for d in dataset.dimensions:
        if UNBOUNDED.search(d.field):
            assert d.optional and not d.default, d.field
    if dataset.dataset != "workersInvocationsAdaptive":  # Workers: quantile gauges, see docs/metrics.md
        assert series_per_group(dataset.select("lean"), 0, 1) <= LEAN_PER_RESOURCE, dataset.dataset


def test_an_attribute_off_by_default_is_grouped_by_only_once_a_counter_has_it() -> None:
    r2 = load().dataset("r2OperationsAdaptiveGroups")
    code = "http.response.status_code"
    assert code in r2.counter_key and not r2.dimension(code).default
    for profile in ("lean", "full"):
        assert code not in r2.select(profile).counter_key
    chosen = r2.select("lean", {"cloudflare.r2.response_size": MetricChoice(None, (code,))})
    assert chosen.counter_key == tuple(a for a in r2.counter_key if r2.dimension(a).default or a == code)
    assert next(c for c in chosen.counters if c.name == "cloudflare.r2.response_size").attributes == (code,)
    # A required dimension cannot be off by default: it could not be left out of the key.
    text = (ROOT / "otelbridge" / "catalogue" / "r2StorageAdaptiveGroups.yaml").read_text(encoding="utf-8")
    broken = text.replace("    values: 2\n", "    values: 2\n    default: false\n", 1)
    with pytest.raises(CatalogueError, match="only an optional dimension can be off by default"):
        parse_dataset(broken, "catalogue/r2StorageAdaptiveGroups.yaml")


def test_a_level_absent_from_an_answer_is_kept_for_the_level_window_only() -> None:
    backlog = load().dataset("queueBacklogAdaptiveGroups")
    assert backlog.level_window == 60
    end = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    seen: dict[tuple[str, ...], datetime] = {}
    levels = keep_levels({}, {("q1",): {"m": 5}, ("q2",): {"m": 7}}, seen, end, backlog)
    for minutes in range(1, 60):  # q2 quiet for 59 minutes: its last level stays
        levels = keep_levels(levels, {("q1",): {"m": minutes}}, seen, end + MINUTE * minutes, backlog)
    assert levels == {("q1",): {"m": 59}, ("q2",): {"m": 7}}
    levels = keep_levels(levels, {("q1",): {"m": 60}}, seen, end + MINUTE * 60, backlog)
    assert levels == {("q1",): {"m": 60}} and set(seen) == {("q1",)}
    # Without a level window only the answer's levels are exported.
    storage = replace(backlog, level_window=0)
    assert keep_levels({("q2",): {"m": 7}}, {("q1",): {"m": 1}}, {("q2",): end}, end, storage) == {
        ("q1",): {"m": 1}
    }


def test_platform_datasets_are_opt_in_and_a_named_metric_turns_its_dataset_on() -> None:
    catalogue = load()
    lean = {d.dataset for d in catalogue.select("lean").enabled}
    zone_datasets = {d.dataset for d in catalogue.datasets if d.scope == "zone"}
    assert lean == {"workersInvocationsAdaptive"} | zone_datasets  # the platform's are off
    assert len(catalogue.select("full").enabled) == len(catalogue.datasets)
    r2 = "r2OperationsAdaptiveGroups"

    def polled(**choices: MetricChoice) -> bool:
        named = {name.replace("__", "."): c for name, c in choices.items()}
        return r2 in {d.dataset for d in catalogue.select("lean", named).enabled}

    assert polled(cloudflare__r2__operations=MetricChoice(enabled=True))
    assert polled(cloudflare__r2__response_object_size=MetricChoice(attributes=("cloudflare.r2.status",)))
    assert not polled(cloudflare__r2__operations=MetricChoice(enabled=False))
    assert not polled(cloudflare__d1__read_queries=MetricChoice(enabled=True))
    # Every metric of a polled dataset turned off: it is not polled either.
    off = {
        m: MetricChoice(enabled=False) for m in catalogue.dataset("workersInvocationsAdaptive").metric_names
    }
    assert {d.dataset for d in catalogue.select("lean", off).enabled} == zone_datasets


def test_a_dataset_switched_off_stays_off_whatever_the_profile_or_metrics() -> None:
    catalogue = load()
    r2, dns = "r2OperationsAdaptiveGroups", "dnsAnalyticsAdaptiveGroups"
    off = catalogue.configure({r2: DatasetChoice(enabled=False), dns: DatasetChoice(enabled=False)})
    named = {"cloudflare.r2.operations": MetricChoice(enabled=True)}
    for profile in ("lean", "full"):
        polled = {d.dataset for d in off.select(profile, named).enabled}
        assert r2 not in polled and dns not in polled, profile
        assert "workersInvocationsAdaptive" in polled
    on = catalogue.configure({r2: DatasetChoice(enabled=True)})
    assert r2 in {d.dataset for d in on.select("lean").enabled}
