"""Rendering dataset rows straight to JSON-ready dicts.

graphql-core completes every leaf of every row through its generic machinery (~10 µs a field),
which dominates a page of thousands of rows. Dataset resolvers therefore hand their rows to this
module, which walks the same selection (aliases, fragments, @skip/@include, merged response keys)
once per page and reads the values directly. A test checks the output equals graphql-core's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
    SelectionSetNode,
    value_from_ast_untyped,
)


class RowLike(Protocol):
    dimensions: dict[str, Any]


def included(node: SelectionNode, variables: Mapping[str, Any]) -> bool:
    for d in node.directives or ():
        if d.name.value in ("skip", "include"):
            arg = next((a for a in d.arguments or () if a.name.value == "if"), None)
            flag = bool(value_from_ast_untyped(arg.value, dict(variables))) if arg else False
            if (d.name.value == "skip") == flag:
                return False
    return True


def fields(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> Iterator[FieldNode]:
    """The fields of a selection set, through fragments (every type condition here matches)."""
    for sel in selection_set.selections if selection_set else ():
        if not included(sel, variables):
            continue
        if isinstance(sel, FieldNode):
            yield sel
        elif isinstance(sel, InlineFragmentNode):
            yield from fields(sel.selection_set, fragments, variables)
        elif isinstance(sel, FragmentSpreadNode):
            yield from fields(fragments[sel.name.value].selection_set, fragments, variables)


# (response key, field name, [(leaf response key, leaf field name)]) for each row-level field
Plan = list[tuple[str, str, list[tuple[str, str]]]]


def plan(
    nodes: Sequence[FieldNode], fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
) -> Plan:
    merged: dict[str, tuple[str, dict[str, str]]] = {}
    for node in nodes:
        for f in fields(node.selection_set, fragments, variables):
            key = f.alias.value if f.alias else f.name.value
            _, leaves = merged.setdefault(key, (f.name.value, {}))
            for leaf in fields(f.selection_set, fragments, variables):
                leaves.setdefault(leaf.alias.value if leaf.alias else leaf.name.value, leaf.name.value)
    return [(key, name, list(leaves.items())) for key, (name, leaves) in merged.items()]


def render(rows: Sequence[RowLike], layout: Plan, type_name: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for key, name, leaves in layout:
            if name == "__typename":
                item[key] = type_name
                continue
            source = getattr(row, name)
            if not leaves:  # a scalar aggregate such as `count`
                item[key] = source
                continue
            sub_type = type_name + name[0].upper() + name[1:]
            item[key] = {k: sub_type if leaf == "__typename" else source[leaf] for k, leaf in leaves}
        out.append(item)
    return out


def splice(data: dict[str, Any], path: Sequence[str | int], value: Any) -> None:
    """Put `value` at `path` (response keys and list indices) of an execution result."""
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
