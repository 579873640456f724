"""otelbridge's schema subset is valid SDL and a true subset of Cloudflare's published schema."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
)

from otelbridge.simulator.datasets import SPECS
from otelbridge.simulator.filters import TIME_DIMENSIONS
from otelbridge.simulator.resolvers import SCHEMA_PATH
from tests.require import missing

REPO = Path(__file__).resolve().parents[2]
FULL_SCHEMA = Path(
    os.environ.get("OTELBRIDGE_CLOUDFLARE_SCHEMA")
    or REPO / ".." / "shared" / "cloudflare-graphql" / "schema-2025-12-07.graphql"
)


@cache
def _load_full_schema() -> GraphQLSchema:
    return build_schema(FULL_SCHEMA.read_text(encoding="utf-8"), assume_valid=True)


def full_schema() -> GraphQLSchema:
    """Cloudflare's published schema; without it the comparison is skipped (failed under CI)."""
    if not FULL_SCHEMA.exists():
        missing(
            f"Cloudflare's published schema not found at {FULL_SCHEMA}: "
            "set OTELBRIDGE_CLOUDFLARE_SCHEMA to schema-2025-12-07.graphql"
        )
    return _load_full_schema()


def test_subset_is_valid_sdl() -> None:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))  # validates the SDL
    assert schema.query_type is not None and schema.query_type.name == "Query"


def subset_types() -> list[str]:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    return sorted(n for n in schema.type_map if not n.startswith("__"))


@pytest.mark.parametrize("name", subset_types())
def test_every_type_field_and_argument_exists_in_cloudflare_schema(name: str) -> None:
    theirs = full_schema().type_map.get(name)
    mine = build_schema(SCHEMA_PATH.read_text(encoding="utf-8")).type_map[name]
    assert theirs is not None, f"type {name} is not in Cloudflare's schema"
    assert type(mine) is type(theirs), name
    if isinstance(mine, GraphQLScalarType):
        return
    if isinstance(mine, GraphQLEnumType):
        assert isinstance(theirs, GraphQLEnumType)
        assert set(mine.values) <= set(theirs.values), set(mine.values) - set(theirs.values)
        return
    assert isinstance(mine, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType)
    assert isinstance(theirs, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType)
    for field_name, field in mine.fields.items():
        other = theirs.fields.get(field_name)
        assert other is not None, f"{name}.{field_name} is not in Cloudflare's schema"
        assert str(field.type) == str(other.type), f"{name}.{field_name}"
        for arg_name, arg in getattr(field, "args", {}).items():
            other_arg = other.args.get(arg_name)
            assert other_arg is not None, f"{name}.{field_name}({arg_name}) is not in Cloudflare's schema"
            assert str(arg.type) == str(other_arg.type), f"{name}.{field_name}({arg_name})"


def test_dataset_is_complete() -> None:
    """All aggregates, dimensions and filter keys of workersInvocationsAdaptive are in the subset."""
    mine = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    for suffix in ("Sum", "Quantiles", "Max", "Min", "Avg", "Dimensions", "Filter_InputObject"):
        name = f"AccountWorkersInvocationsAdaptive{suffix}"
        ours, full = mine.type_map[name], full_schema().type_map[name]
        assert isinstance(ours, GraphQLObjectType | GraphQLInputObjectType)
        assert isinstance(full, GraphQLObjectType | GraphQLInputObjectType)
        assert set(ours.fields) == set(full.fields), name


def object_type(schema: GraphQLSchema, name: str) -> GraphQLObjectType:
    t = schema.type_map[name]
    assert isinstance(t, GraphQLObjectType), name
    return t


def input_type(schema: GraphQLSchema, name: str) -> GraphQLInputObjectType:
    t = schema.type_map[name]
    assert isinstance(t, GraphQLInputObjectType), name
    return t


@pytest.mark.parametrize("dataset", sorted(SPECS))
def test_simulated_dataset_matches_its_subset_and_published_node(dataset: str) -> None:
    """The subset declares exactly the dimensions and aggregates the simulator serves; every
    dimension has all its published filter keys; the time dimensions are the published ones."""
    spec = SPECS[dataset]
    mine, theirs = build_schema(SCHEMA_PATH.read_text(encoding="utf-8")), full_schema()
    parent = "zone" if spec.scope == "zone" else "account"
    node, published = object_type(mine, parent).fields[dataset], object_type(theirs, parent).fields[dataset]
    assert str(node.type) == str(published.type) == f"[{spec.row_type}!]!"
    dims = object_type(mine, f"{spec.row_type}Dimensions")
    assert set(dims.fields) == {*spec.dimensions, *spec.time_dimensions}
    published_dims = object_type(theirs, f"{spec.row_type}Dimensions").fields
    assert set(published_dims) & set(TIME_DIMENSIONS) == set(spec.time_dimensions)
    ours_filter = input_type(mine, f"{spec.row_type}Filter_InputObject").fields
    their_filter = input_type(theirs, f"{spec.row_type}Filter_InputObject").fields
    for dim in dims.fields:
        keys = {k for k in their_filter if k.split("_")[0] == dim}
        assert keys and keys <= set(ours_filter), (dim, keys - set(ours_filter))
    row = object_type(mine, spec.row_type).fields
    assert ("count" in row) == spec.count
    groups = {
        "sum": {name for name, _ in spec.sums},
        "max": set(spec.maxes),
        "avg": {*spec.averages, *(["sampleInterval"] if spec.sample_interval else [])},
    }
    for group, leaves in groups.items():
        declared = set(object_type(mine, f"{spec.row_type}{group.title()}").fields) if group in row else set()
        assert declared == leaves, (group, declared, leaves)
    settings = object_type(mine, "ZoneSettings" if spec.scope == "zone" else "AccountSettings")
    assert str(settings.fields[dataset].type) == "Settings!"
