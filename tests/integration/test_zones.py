"""Zone datasets end to end over real HTTP against the simulated API: exact counters for every
zone dataset, one request per group of up to 10 zones, plans without a dataset, zones coming and
going, filters, restarts and split pages."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from otelbridge import statuspage
from otelbridge.bridge import Bridge
from otelbridge.catalogue import DatasetChoice, load
from otelbridge.clock import ManualClock
from otelbridge.config import Config, ZoneFilter
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Simulator, Traffic
from otelbridge.windows import floor_minute
from tests.integration.test_cli_operator import clean_env, otelbridge
from tests.zones import expected_zone_counters, samples, world_zones, zone_counters

SKIP_LOG = "its plan lacks"
FIREWALL = "cloudflare_zone_firewall_events_total"


def graphql_requests(sim: Simulator) -> int:
    return sum(e.endpoint == "graphql" for e in sim.query_log)


def self_metric(bridge: Bridge, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples(bridge, name).items() if sample == name}


async def run_for(bridge: Bridge, clock: ManualClock, minutes: int) -> None:
    for _ in range(minutes):
        clock.advance(60)
        await bridge.poll_once()


def ends(bridge: Bridge) -> dict[str, datetime]:
    """Each zone's watermark: all its polled datasets stand at the same minute."""
    out = {}
    for tag, z in bridge.zones.items():
        counted = {ledger.counted for name, ledger in z.ledgers.items() if name not in z.skipped}
        assert len(counted) == 1, f"{z.label}: datasets at different minutes {counted}"
        out[tag] = counted.pop()
    return out


async def test_every_zone_counter_equals_the_ground_truth_over_an_hour(
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim.knobs.ingestion_delay = 120  # answers for recent minutes keep growing for two minutes
    caplog.set_level(logging.INFO)
    bridge = make_bridge(make_config(datasets=()))
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 60)

    world = world_zones(sim.traffic)
    assert len(world) == 12 and len(bridge.accounts) == 3
    assert set(bridge.zones) == set(world)
    want = expected_zone_counters(sim.traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
    got = zone_counters(bridge)
    assert got == want
    # every zone dataset is represented, and every zone
    names = {metric for metric, _ in want}
    assert len(bridge.zone_datasets) == 5
    assert names == {
        prometheus_name(c.name, c.unit, True) for d in bridge.zone_datasets for _, c in d.exported_counters
    }
    assert {dict(labels)["cloudflare_zone_id"] for _, labels in want} == set(world)
    assert all(value == int(value) for value in got.values())

    # Datasets a plan lacks: skipped, one log line per zone, counted by a self-metric and in /status.
    lacking = {tag: disabled for tag, (_, _, disabled) in world.items() if disabled}
    assert {tag: frozenset(z.skipped) for tag, z in bridge.zones.items() if z.skipped} == lacking
    lines = [r.getMessage() for r in caplog.records if SKIP_LOG in r.getMessage()]
    assert len(lines) == len(lacking)
    assert all(any(world[tag][0] in line for line in lines) for tag in lacking)
    skipped = self_metric(bridge, "otelbridge_datasets_skipped")
    expected_skips: dict[tuple[tuple[str, str], ...], float] = {}
    for _, account, disabled in world.values():
        for name in disabled:
            labels = (("cloud_account_id", account),)
            key = tuple(sorted((*labels, ("cloudflare_dataset", name))))
            expected_skips[key] = expected_skips.get(key, 0) + 1
    assert skipped == expected_skips
    status = bridge.status()
    assert status["ok"] is True
    assert {(s["zone"], s["dataset"]) for s in status["skipped"]} == {  # type: ignore[attr-defined]
        (tag, name) for tag, disabled in lacking.items() for name in disabled
    }
    zones_up = self_metric(bridge, "otelbridge_zones_up")
    assert sum(zones_up.values()) == 12
    page = statuspage.render(status, bridge.history, bridge.config.rate_limit, clock.now())
    assert page.count("<h3>Zones: ") == 3 and all(f"<td>{name}</td>" in page for name, _, _ in world.values())
    assert "<td>firewallEventsAdaptiveGroups, healthCheckEventsAdaptiveGroups, loadBalancing" in page


async def test_steady_state_takes_one_request_per_account_and_per_ten_zones(
    clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    traffic = Traffic.zoned(seed=3, zones=35)  # plans in turn: a quarter of the zones are free
    sim = Simulator(traffic=traffic, clock=clock)
    await sim.start()
    try:
        bridge = make_bridge(make_config(api_url=sim.base_url, datasets=()))
        await bridge.start()
        start = floor_minute(clock.now() - bridge.config.lookback)
        await bridge.poll_once()
        await run_for(bridge, clock, 3)  # caught up: every zone's ledgers stand at the same minutes
        per_cycle = []
        for _ in range(5):
            clock.advance(60)
            sim.reset_log()
            await bridge.poll_once()
            per_cycle.append(graphql_requests(sim))
        assert per_cycle == [1 + math.ceil(35 / 10)] * 5
        assert [len(g) for g in bridge.zone_groups(traffic.accounts[0].tag)] == [10, 10, 10, 5]
        world = world_zones(traffic)
        want = expected_zone_counters(traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
        assert zone_counters(bridge) == want
        assert self_metric(bridge, "otelbridge_api_requests_split_total") == {
            (("cloud_account_id", traffic.accounts[0].tag),): 0
        }
    finally:
        await sim.stop()


async def test_a_zone_added_or_removed_between_listings_leaves_the_others_untouched(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 60
    account = sim.traffic.accounts[0]
    late, leaving = account.zones[1], account.zones[2]
    sim.traffic.hidden_zones.add(late)
    config = make_config(datasets=(), zones=ZoneFilter(refresh=timedelta(minutes=5)))
    bridge = make_bridge(config)
    await bridge.start()
    start = floor_minute(clock.now() - config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 6)
    assert late not in bridge.zones and leaving in bridge.zones
    before = zone_counters(bridge)

    sim.traffic.hidden_zones.add(leaving)
    sim.traffic.hidden_zones.discard(late)
    clock.advance(60)
    await bridge.poll_once()  # before the next listing: the zone gone fails alone
    assert leaving in bridge.zones and {tag for tag, z in bridge.zones.items() if not z.up} == {leaving}
    for _ in range(5):  # the next listing is at most `refresh` away
        clock.advance(60)
        await bridge.poll_once()
        if late in bridge.zones:
            break
    joined = floor_minute(clock.now() - config.lookback)  # a new zone counts from lookback ago
    assert late in bridge.zones and leaving not in bridge.zones
    await run_for(bridge, clock, 12)

    world = world_zones(sim.traffic)
    starts = {tag: joined if tag == late else start for tag in world}
    want = expected_zone_counters(sim.traffic, bridge, starts, ends(bridge), clock.now())
    got = zone_counters(bridge)
    assert got == want
    assert not any(dict(labels)["cloudflare_zone_id"] == leaving for _, labels in got)
    assert any(dict(labels)["cloudflare_zone_id"] == late for _, labels in got)
    # The zones that stayed were never reset: each series only grew.
    stayed = {k: v for k, v in before.items() if dict(k[1])["cloudflare_zone_id"] != leaving}
    assert stayed and all(got[k] >= v for k, v in stayed.items())


async def test_include_and_exclude_choose_zones_by_name_or_id(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    world = world_zones(sim.traffic)
    by_name = {name: tag for tag, (name, _, _) in world.items()}
    config = make_config(
        datasets=(),
        delay=timedelta(0),  # minutes final at once: nothing is open, so a cycle may ask for nothing
        settle=timedelta(0),
        zones=ZoneFilter(include=("*.example.com", by_name["my-blog.net"]), exclude=("api.example.com",)),
    )
    bridge = make_bridge(config)
    await bridge.start()
    await bridge.poll_once()
    await run_for(bridge, clock, 2)
    await bridge.poll_once()  # again within the minute: nothing to ask for, no request at all
    assert all(z.up for z in bridge.zones.values())
    polled = {z.name for z in bridge.zones.values()}
    assert polled == {"cdn.example.com", "staging.example.com", "my-blog.net"}
    exported = {dict(labels)["cloudflare_zone_name"] for _, labels in zone_counters(bridge)}
    assert exported == polled


async def test_a_restart_from_state_continues_zone_counters_exactly(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 120
    config = make_config(datasets=())
    first = make_bridge(config)
    await first.start()
    start = floor_minute(clock.now() - config.lookback)
    await first.poll_once()
    await run_for(first, clock, 8)
    await first.close()

    clock.advance(180)  # down for three minutes
    second = make_bridge(replace(config))
    await second.start()
    await second.poll_once()
    await run_for(second, clock, 10)
    world = world_zones(sim.traffic)
    want = expected_zone_counters(sim.traffic, second, dict.fromkeys(world, start), ends(second), clock.now())
    assert zone_counters(second) == want


async def test_full_pages_are_followed_counted_as_split_requests_and_stay_exact(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.max_page_size = 12  # fewer rows than a busy zone's (cache status, response status) groups
    bridge = make_bridge(make_config(datasets=()))
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 3)
    split = self_metric(bridge, "otelbridge_api_requests_split_total")
    assert sum(split.values()) > 0
    status_split = {tag: a["split_requests"] for tag, a in bridge.status()["accounts"].items()}  # type: ignore[attr-defined]
    assert {dict(k)["cloud_account_id"]: v for k, v in split.items()} == status_split
    world = world_zones(sim.traffic)
    want = expected_zone_counters(sim.traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
    assert zone_counters(bridge) == want


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("zones: {include: [example.com], exclude: 5}", "zones.exclude"),
        ("zones: {only: [example.com]}", "zones: unknown key 'only'"),
        (
            "datasets: {httpRequestsAdaptiveGroups: {dimensions: [geo.city]}}",
            "datasets.httpRequestsAdaptiveGroups",
        ),
    ],
)
def test_a_bad_zone_setting_exits_2_naming_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    config = tmp_path / "otelbridge.yaml"
    config.write_text(yaml_text + "\n", encoding="utf-8")
    env = {**clean_env(), "CLOUDFLARE_API_TOKEN": "unused-token"}
    result = otelbridge("run", "--config", str(config), env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"otelbridge: configuration error: {key}")


async def test_a_plan_losing_a_dataset_is_read_again_and_only_that_pair_stops(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(datasets=()))
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 3)
    analytics, account = sim.traffic.analytics, sim.traffic.accounts[0]
    tag = next(z.tag for z in analytics.resources[account.tag].zones if z.plan == "business")
    frozen = {
        k: v
        for k, v in zone_counters(bridge).items()
        if k[0] == FIREWALL and ("cloudflare_zone_id", tag) in k[1]
    }
    assert frozen

    # Downgraded: Cloudflare now refuses the dataset for that zone, voiding its group's request.
    resources = analytics.resources[account.tag]
    zones = tuple(
        replace(z, disabled=z.disabled | {"firewallEventsAdaptiveGroups"}) if z.tag == tag else z
        for z in resources.zones
    )
    analytics.resources[account.tag] = replace(resources, zones=zones)
    await run_for(bridge, clock, 1)
    assert not bridge.zones[tag].up
    await run_for(bridge, clock, 6)
    assert bridge.zones[tag].skipped == ("firewallEventsAdaptiveGroups",)
    assert all(z.up for z in bridge.zones.values())

    world = world_zones(sim.traffic)
    want = expected_zone_counters(sim.traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
    got = zone_counters(bridge)
    assert {k: v for k, v in got.items() if k not in frozen} == want
    assert {k: got[k] for k in frozen} == frozen  # the zone's firewall series keep their last totals


async def test_the_lean_defaults_and_an_added_dimension_are_exact(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 120
    by_country = DatasetChoice(dimensions=("http.response.status_code", "geo.country.iso_code"))
    config = make_config(profile="lean", datasets=(("httpRequestsAdaptiveGroups", by_country),))
    bridge = make_bridge(config)
    await bridge.start()
    start = floor_minute(clock.now() - config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 15)
    world = world_zones(sim.traffic)
    want = expected_zone_counters(sim.traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
    got = zone_counters(bridge)
    assert got == want
    labels: dict[str, set[str]] = {name: set() for name, _ in got}
    for name, key in got:
        labels[name] |= {k for k, _ in key} - {
            "cloudflare_zone_id",
            "cloudflare_zone_name",
            "cloud_account_id",
        }
    assert labels["cloudflare_zone_requests_total"] == {
        "cloudflare_cache_status",
        "geo_country_iso_code",
        "http_response_status_code",
    }
    assert labels["cloudflare_zone_visits_total"] == {"geo_country_iso_code"}  # added: on every counter
    assert labels["cloudflare_zone_dns_queries_total"] == {
        "dns_question_type",
        "cloudflare_dns_response_code",
    }
    assert "cloudflare_zone_edge_request_bytes_total" not in labels  # off in the lean profile
    assert len({dict(k)["geo_country_iso_code"] for n, k in got if n == "cloudflare_zone_visits_total"}) > 3


async def test_zones_alone_with_every_account_dataset_off_are_polled_and_exact(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    """A zones-only setup (a site on Cloudflare without Workers) runs and counts exactly."""
    off = tuple((d.dataset, DatasetChoice(enabled=False)) for d in load().datasets if d.scope == "account")
    bridge = make_bridge(make_config(datasets=off))
    await bridge.start()
    assert bridge.datasets == () and len(bridge.zone_datasets) == 5
    start = floor_minute(clock.now() - bridge.config.lookback)
    await bridge.poll_once()
    await run_for(bridge, clock, 15)

    world = world_zones(sim.traffic)
    assert set(bridge.zones) == set(world)
    want = expected_zone_counters(sim.traffic, bridge, dict.fromkeys(world, start), ends(bridge), clock.now())
    assert want and zone_counters(bridge) == want
    assert bridge.status()["ok"] is True
    lag = self_metric(bridge, "otelbridge_watermark_lag_seconds")
    assert len(lag) == 3 and all(0 < v < 600 for v in lag.values())
