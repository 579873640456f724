"""Query text is printed once per document, as gql would print it, and sent unchanged."""

from __future__ import annotations

from graphql import print_ast

from otelbridge.cloudflare import queries
from otelbridge.cloudflare.client import _PrintedOnce


def test_a_document_is_printed_once_and_as_gql_prints_it() -> None:
    document = queries.settings_query(("workersInvocationsAdaptive",))
    first = _PrintedOnce(document, variable_values={"account": "a"}).payload
    second = _PrintedOnce(document, variable_values={"account": "b"}).payload
    assert first == {"query": print_ast(document), "variables": {"account": "a"}}
    assert second["variables"] == {"account": "b"}
    assert second["query"] is first["query"], "printed again"
    other = queries.settings_query(("r2OperationsAdaptiveGroups",))
    assert _PrintedOnce(other).payload == {"query": print_ast(other)}
