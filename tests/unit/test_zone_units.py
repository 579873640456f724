"""Zone pieces without a network: grouping zones into `zoneTag_in` fields of valid documents,
dimension overrides, the `datasets` and `zones` settings, the state file's zones, and the
dashboard of the zone datasets."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from graphql import validate

from dashboards.generate import ZONES_FILE, generate
from otelbridge.catalogue import load
from otelbridge.cloudflare import queries
from otelbridge.cloudflare.client import load_schema
from otelbridge.config import ConfigError, ZoneFilter
from otelbridge.config import load as load_config
from otelbridge.docs import prometheus_name
from otelbridge.ledger import Ledger
from otelbridge.state import StateStore

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HTTP, DNS = "httpRequestsAdaptiveGroups", "dnsAnalyticsAdaptiveGroups"


def sums(dataset: str, start: datetime, end: datetime) -> queries.AliasRequest:
    return queries.AliasRequest(load().dataset(dataset), "open", queries.Shape.SUMS, start, end)


def test_zones_asking_for_the_same_ranges_share_one_field_of_one_valid_document() -> None:
    now, later = (sums(HTTP, T0, T0 + timedelta(minutes=2)), sums(DNS, T0, T0 + timedelta(minutes=2)))
    joined = sums(HTTP, T0 - timedelta(minutes=9), T0 + timedelta(minutes=2))  # a zone that joined later
    wanted = {"a": (now, later), "b": (now, later), "c": (joined,), "d": (now,), "e": ()}
    limits = {zone: {HTTP: 100, DNS: 100} for zone in wanted}
    fields = queries.zone_fields(wanted, limits)
    assert [f.zones for f in fields] == [("a", "b"), ("c",), ("d",)]
    document, variables = queries.zone_request(fields, ())
    assert validate(load_schema(), document) == []
    assert variables["z0"] == ["a", "b"] and variables["z1"] == ["c"]
    assert variables["z1_httpRequestsAdaptiveGroups_openFrom"] == "2026-11-26T08:51:00Z"
    # different page sizes (another plan) are asked for apart
    limits["b"] = {HTTP: 10, DNS: 100}
    assert [f.zones for f in queries.zone_fields(wanted, limits)][:2] == [("a",), ("b",)]


def test_an_account_dataset_is_never_asked_of_zones() -> None:
    workers = queries.AliasRequest(
        load().dataset("workersInvocationsAdaptive"),
        "open",
        queries.Shape.SUMS,
        T0,
        T0 + timedelta(minutes=1),
    )
    fields = queries.zone_fields({"a": (workers,)}, {"a": {"workersInvocationsAdaptive": 10}})
    with pytest.raises(ValueError, match="only zone-scope datasets"):
        queries.zone_request(fields, ())


def test_a_dimension_override_keeps_the_page_key_first_and_exports_what_it_adds() -> None:
    http = load().dataset(HTTP)
    by_country = http.with_dimensions(("geo.country.iso_code", "http.response.status_code"))
    assert by_country.counter_key == (
        "cloudflare.cache.status",
        "geo.country.iso_code",
        "http.response.status_code",
    )
    assert "geo.country.iso_code" not in by_country.optional  # asked for: every counter carries it
    edge = next(c for c in by_country.counters if c.name == "cloudflare.zone.edge_response")
    assert edge.attributes == ("cloudflare.cache.status",)
    with pytest.raises(KeyError, match="nope"):
        http.with_dimensions(("nope",))


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("zones: {include: [a.com], exclud: [b.com]}", "zones: unknown key 'exclud'"),
        ("zones: [a.com]", "zones: expected a mapping"),
        ("zones: {include: 'a.com b.com'}", "zones.include: 'a.com b.com' is not a zone name"),
        ("zones: {refresh: 10s}", "zones.refresh: must be at least 1m"),
        ("datasets: {httpRequests: {enabled: false}}", "datasets.httpRequests: unknown dataset"),
        (
            "datasets: {dnsAnalyticsAdaptiveGroups: {colour: red}}",
            "datasets.dnsAnalyticsAdaptiveGroups: unknown key 'colour'",
        ),
        (
            "datasets: {dnsAnalyticsAdaptiveGroups: {dimensions: [dns.name]}}",
            "datasets.dnsAnalyticsAdaptiveGroups.dimensions: 'dns.name' is not a dimension",
        ),
    ],
)
def test_bad_zone_and_dataset_settings_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={})


def test_zone_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "zones: {include: ['*.example.com', abc], exclude: [API.example.com], refresh: 2h}\n"
        "datasets: {dnsAnalyticsAdaptiveGroups: {enabled: false},"
        " httpRequestsAdaptiveGroups: {dimensions: [geo.country.iso_code]}}\n",
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    assert config.zones == ZoneFilter(("*.example.com", "abc"), ("API.example.com",), timedelta(hours=2))
    catalogue = config.catalogue()
    assert not catalogue.dataset(DNS).enabled
    assert catalogue.dataset(HTTP).counter_key == ("cloudflare.cache.status", "geo.country.iso_code")


def test_the_zone_filter_matches_names_ids_and_patterns() -> None:
    f = ZoneFilter(include=("*.example.com", "0123"), exclude=("api.example.com",))
    assert f.wants("x", "shop.example.com") and f.wants("0123", "other.net")
    assert not f.wants("x", "api.example.com") and not f.wants("x", "example.com")
    assert not f.wants("x", "other.net")
    assert ZoneFilter().wants("x", "anything") and not ZoneFilter(exclude=("x",)).wants("x", "y")


def test_zone_ledgers_are_saved_apart_and_a_rekeyed_dataset_starts_afresh(tmp_path: Path) -> None:
    http = load().dataset(HTTP)
    ledger = Ledger.starting_at(http.fields, T0)
    zone = "0123456789abcdef0123456789abcdef"
    keys = {HTTP: http.counter_key}
    StateStore(tmp_path, "https://x", keys).save({}, {zone: {HTTP: ledger}})
    shapes = {HTTP: (http.fields, 2)}
    accounts, zones = StateStore(tmp_path, "https://x", keys).load_all(shapes)
    assert accounts == {} and set(zones) == {zone} and zones[zone][HTTP].counted == T0
    # counted by other dimensions now: its saved totals would be keyed wrongly, so they are dropped
    other = {HTTP: ("cloudflare.cache.status", "geo.country.iso_code")}
    assert StateStore(tmp_path, "https://x", other).load_all(shapes) == ({}, {})


def test_every_zone_counter_is_on_the_zones_dashboard() -> None:
    board = json.loads(generate()[ZONES_FILE])
    text = "\n".join(t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"])
    names = [
        prometheus_name(c.name, c.unit, True)
        for d in load().datasets
        if d.scope == "zone"
        for c in d.counters
    ]
    assert len(names) >= 8 and [n for n in names if n not in text] == []
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "account", "zone"]
