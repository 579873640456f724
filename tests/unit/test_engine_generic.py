"""The counting engine knows no dataset: everything about one comes from its catalogue file."""

from __future__ import annotations

import io
import re
import tokenize
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from graphql import print_ast

from otelbridge import snapshot
from otelbridge.catalogue import CatalogueError, combine, load, parse_dataset
from otelbridge.cloudflare import queries
from otelbridge.cloudflare.answers import level_rows, sum_rows
from otelbridge.cloudflare.errors import MalformedResponse
from otelbridge.ledger import Ledger
from tests.datasets import workers

ROOT = Path(__file__).resolve().parents[2]
ENGINE = (
    "windows.py",
    "ledger.py",
    "poller.py",
    "snapshot.py",
    "cloudflare/queries.py",
    "cloudflare/answers.py",
)


def code_words(path: Path) -> set[str]:
    """Identifiers and string contents of a module, without comments and docstrings."""
    words: set[str] = set()
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        docstring = token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT)
        if token.type in (tokenize.NAME, tokenize.STRING) and not docstring:
            words.update(re.findall(r"[A-Za-z_]+", token.string))
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    return words


def test_engine_modules_name_no_dataset() -> None:
    w = workers()
    # Workers' own names: its dimensions and every camel-case field (plain words like `requests`
    # are also the engine's own vocabulary).
    fields = {d.field for d in w.dimensions} | {
        m.field for m in (*w.counters, *w.quantile_gauges, *w.average_gauges) if m.field != m.field.lower()
    }
    forbidden = {"script", "status", "workers", *(f.lower() for f in fields), "subrequests"}
    # and the zone datasets' words (the scope word `zone` is the engine's own)
    forbidden |= {
        "http",
        "firewall",
        "dns",
        "cachestatus",
        "healthcheck",
        "balanc",
        "colo",
        "country",
        "visits",
    }
    for module in ENGINE:
        words = {word.lower() for word in code_words(ROOT / "otelbridge" / module)}
        found = {word for word in words if any(bad in word for bad in forbidden)}
        assert not found, f"{module} names {sorted(found)}"


MINIMAL = """
dataset: testLevels
node: r2StorageAdaptiveGroups
scope: account
time_filter: datetime
dimensions:
  - {attribute: cloudflare.r2.bucket, field: bucketName, description: the bucket}
counter_key: [cloudflare.r2.bucket]
page_key: cloudflare.r2.bucket
gauge_key: [cloudflare.r2.bucket]
counters:
  - {name: test.r2.rows, source: count, unit: "{row}", description: Rows.}
level_gauges:
  - {name: test.r2.stored, source: max.payloadSize, type: integer, unit: By, description: Stored bytes.}
"""
FILE = "catalogue/testLevels.yaml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("scope: account", "scope: region"),
            "testLevels.yaml: scope: expected account or zone",
        ),
        (("source: count", "source: total"), "counters[0].source: expected `count` or `sum.<field>`"),
        (("page_key: cloudflare.r2.bucket", "page_key: nope"), "page_key: 'nope' must be"),
        (("gauge_key: [cloudflare.r2.bucket]", "gauge_key: [x]"), "gauge_key: unknown dimensions ['x']"),
        (("type: integer", "type: int"), "level_gauges[0].type: expected integer or float"),
        (("unit: By,", "unit: By, colour: red,"), "level_gauges[0].colour: unknown key"),
        (("dataset: testLevels", "dataset: other"), "dataset: 'other' must be the file's name"),
    ],
)
def test_bad_catalogues_are_refused_naming_the_file_and_key(change: tuple[str, str], message: str) -> None:
    with pytest.raises(CatalogueError, match=re.escape(message)):
        parse_dataset(MINIMAL.replace(*change), FILE)


def test_a_metric_name_is_defined_once_across_files() -> None:
    base = load()
    clash = parse_dataset(MINIMAL.replace("test.r2.rows", "cloudflare.workers.requests"), FILE)
    message = "cloudflare.workers.requests is also defined in catalogue/workers"
    with pytest.raises(CatalogueError, match=re.escape(message)):
        combine((*base.datasets, clash), base.self_metrics)


T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_integer_dimensions_become_decimal_strings_and_nothing_else_passes() -> None:
    by_code = MINIMAL.replace(
        "counter_key: [cloudflare.r2.bucket]",
        "  - {attribute: http.response.status_code, field: edgeResponseStatus, type: integer, optional: true,"
        " description: the status}\ncounter_key: [cloudflare.r2.bucket, http.response.status_code]",
    )
    dataset = parse_dataset(by_code, FILE)
    fields = queries.key_fields(dataset, queries.Shape.SUMS)
    assert fields == ("bucketName", "edgeResponseStatus")
    row = {"dimensions": {"bucketName": "b", "edgeResponseStatus": 404}, "count": 3}
    assert sum_rows([row], "x", dataset, fields) == {("b", "404"): (3,)}
    for wrong in ("404", True, None):
        spoiled = {**row, "dimensions": {"bucketName": "b", "edgeResponseStatus": wrong}}
        with pytest.raises(MalformedResponse, match="integer dimension edgeResponseStatus"):
            sum_rows([spoiled], "x", dataset, fields)
    with pytest.raises(MalformedResponse, match="dimension bucketName"):
        sum_rows([{**row, "dimensions": {"bucketName": 7, "edgeResponseStatus": 404}}], "x", dataset, fields)


def test_level_gauges_are_queried_by_time_and_export_the_newest_value_unsummed() -> None:
    dataset = parse_dataset(MINIMAL, FILE)
    request = queries.AliasRequest(dataset, "levels", queries.Shape.LEVELS, T0, T0 + timedelta(minutes=5))
    text = print_ast(queries.account_request("a" * 32, (request,), {dataset.dataset: 100}, ())[0])
    assert "testLevels_levels: r2StorageAdaptiveGroups(" in text
    assert "orderBy: [bucketName_ASC, datetime_DESC]" in text
    assert re.search(r"dimensions \{\s*bucketName\s+datetime\s*\}\s*max \{\s*payloadSize\s*\}", text)

    newest_first = [
        {"dimensions": {"bucketName": "b", "datetime": "2026-11-26T09:04:00Z"}, "max": {"payloadSize": 700}},
        {"dimensions": {"bucketName": "b", "datetime": "2026-11-26T09:03:00Z"}, "max": {"payloadSize": 500}},
        {"dimensions": {"bucketName": "c", "datetime": "2026-11-26T09:01:00Z"}, "max": {"payloadSize": 9}},
    ]
    levels = level_rows(newest_first, "x", dataset, ("bucketName",))
    assert levels == {("b",): {"test.r2.stored": 700}, ("c",): {"test.r2.stored": 9}}
    with pytest.raises(MalformedResponse, match="expected an integer"):
        level_rows([{**newest_first[0], "max": {"payloadSize": 1.5}}], "x", dataset, ("bucketName",))

    catalogue = combine((dataset,), ())
    ledger = Ledger.starting_at(dataset.fields, T0)
    health = {"acct": snapshot.AccountHealth(True, 0.1, {}, {dataset.dataset: levels})}
    snap = snapshot.build(
        catalogue, (), {"acct": {dataset.dataset: ledger}}, health, snapshot.Health(), T0, 10
    )
    stored = {tuple(sorted(o.attributes.items())): o.value for o in snap.observe("test.r2.stored")}
    assert stored == {
        (("cloud.account.id", "acct"), ("cloudflare.r2.bucket", "b")): 700,
        (("cloud.account.id", "acct"), ("cloudflare.r2.bucket", "c")): 9,
    }
    assert snap.series == 2


def test_counters_are_summed_over_exactly_the_optional_attributes_they_leave_out() -> None:
    text = """
dataset: threeKeys
scope: zone
time_filter: datetimeMinute
dimensions:
  - {attribute: host, field: clientRequestHTTPHost, description: the host}
  - {attribute: method, field: clientRequestHTTPMethodName, description: the method, optional: true}
  - {attribute: country, field: clientCountryName, description: the country, optional: true, default: false}
counter_key: [host, method, country]
page_key: host
counters:
  - {name: t.all, source: count, unit: "1", description: All keys.}
  - {name: t.by_country, source: sum.edgeResponseBytes, type: integer, unit: By, description: By country,
     attributes: [country]}
"""
    dataset = parse_dataset(text, "threeKeys.yaml")
    assert [c.attributes for c in dataset.counters] == [("method",), ("country",)]
    # `full` turns on every optional attribute but those that are off by default.
    assert [c.attributes for c in dataset.select("full").counters] == [("method",), ("method",)]
    ledger = Ledger.starting_at(dataset.fields, T0)
    ledger.totals.update(
        {("h", "GET", "DE"): (1, 10), ("h", "PUT", "DE"): (2, 20), ("h", "GET", "FR"): (4, 40)}
    )
    ledgers = {"zone": {dataset.dataset: ledger}}
    snap = snapshot.build(combine((dataset,), ()), (), ledgers, {}, snapshot.Health(), T0, 10)

    def values(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(o.attributes.items())): o.value for o in snap.observe(name)}

    zone = ("cloudflare.zone.id", "zone")
    assert values("t.all") == {
        (zone, ("host", "h"), ("method", "GET")): 5,
        (zone, ("host", "h"), ("method", "PUT")): 2,
    }
    assert values("t.by_country") == {
        (zone, ("country", "DE"), ("host", "h")): 30,
        (zone, ("country", "FR"), ("host", "h")): 40,
    }
    assert snap.series == 4
