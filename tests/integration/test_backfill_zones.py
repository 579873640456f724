"""`otelbridge backfill` of zone datasets against the simulated API over HTTP: the accounts' zones
listed as live, exact totals beside the Workers', plans lacking a dataset, resume, and the handover
of the zone ledgers to live counting."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from otelbridge.backfill import Backfill, BackfillError
from otelbridge.bridge import Bridge
from otelbridge.catalogue import Catalogue, combine, load
from otelbridge.clock import ManualClock
from otelbridge.config import Config, ZoneFilter
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.backfill_truth import exact_totals
from tests.datasets import workers
from tests.integration.test_backfill import Interrupt, Interrupted, Samples, backfill, limited, read
from tests.integration.test_zones import ends
from tests.zones import world_zones, zone_counters, zone_truth

HTTP = "httpRequestsAdaptiveGroups"
FIREWALL = "firewallEventsAdaptiveGroups"  # free plans lack it
__all__ = ["limited"]  # the fixture


def zone_catalogue(with_workers: bool = True) -> Catalogue:
    base = load()
    zone = tuple(base.dataset(name) for name in (HTTP, FIREWALL))
    return combine((workers(base), *zone) if with_workers else zone, base.self_metrics)


def totals_at(samples: Samples, at: datetime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    stamp = int(at.timestamp())
    return {k: s[stamp] for k, s in samples.items() if stamp in s and k[0].endswith("_total")}


def truth(
    sim: Simulator, run: Backfill, at: datetime, as_of: datetime
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter's exact total over [the backfill's start, at), as settled at `as_of`: Workers'
    and the zones'."""
    progress = run.progress
    assert progress is not None
    start = progress.start
    zones = zone_truth(
        sim.traffic,
        run.zone_datasets,
        dict.fromkeys(progress.zones, start),
        dict.fromkeys(progress.zones, at),
        as_of,
    )
    accounts = exact_totals(sim.traffic, run.account_datasets, progress.accounts, start, at)
    return {**{k: float(v) for k, v in zones.items()}, **{k: float(v) for k, v in accounts.items()}}


async def test_zone_datasets_are_exact_beside_workers_and_a_dataset_a_plan_lacks_is_skipped(
    limited: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = make_config(datasets=())
    start = clock.now() - timedelta(hours=4)
    run, files = await backfill(config, clock, tmp_path / "om", start=start, datasets=zone_catalogue())
    progress = run.progress
    assert progress is not None
    world = world_zones(limited.traffic)
    assert set(progress.zones) == set(world) and len(progress.accounts) == 3
    assert {tag: (name, account) for tag, (name, account, _) in world.items()} == progress.zones
    graphql = [e for e in limited.query_log if e.endpoint == "graphql"]
    assert {e.outcome for e in graphql} == {"ok"}, (
        "no query broke a limit (nor asked a plan for what it lacks)"
    )

    lacking = {tag for tag, (_, _, disabled) in world.items() if FIREWALL in disabled}
    assert lacking and lacking != set(world)
    skipped = [r.getMessage() for r in caplog.records if "its plan lacks" in r.getMessage()]
    assert len(skipped) == len(lacking) and all(any(t in line for line in skipped) for t in lacking)

    samples = read(files.files)
    checked = set()
    for hour in range(1, 5):
        at = progress.start + timedelta(hours=hour)
        if at > progress.end:
            break
        want = truth(limited, run, at, clock.now())
        # (a series first counted in the next step has its zero sample here)
        got = {k: v for k, v in totals_at(samples, at).items() if v or k in want}
        assert got == want, f"totals at {at}"
        checked |= {name for name, _ in want}
    assert {"cloudflare_zone_requests_total", "cloudflare_zone_firewall_events_total"} <= checked
    assert any(name.startswith("cloudflare_workers_") for name in checked)
    zone_series = [labels for (name, labels) in samples if name.startswith("cloudflare_zone_")]
    assert all(
        {k for k, _ in labels} >= {"cloudflare_zone_id", "cloudflare_zone_name", "cloud_account_id"}
        for labels in zone_series
    )


async def test_the_zones_setting_chooses_the_zones_backfilled(
    limited: Simulator, clock: ManualClock, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    world = world_zones(limited.traffic)
    name = sorted(n for n, _, _ in world.values())[0]
    config = make_config(datasets=(), state_dir=None, zones=ZoneFilter(exclude=(name,)))
    start = clock.now() - timedelta(hours=1)
    run, files = await backfill(config, clock, tmp_path, start=start, datasets=zone_catalogue())
    assert run.progress is not None
    assert {n for n, _ in run.progress.zones.values()} == {n for n, _, _ in world.values()} - {name}
    names = {dict(labels).get("cloudflare_zone_name") for _, labels in read(files.files)}
    assert name not in names and len(names) > 2


async def test_an_interrupted_backfill_resumes_its_zones_and_writes_the_same_files(
    limited: Simulator, clock: ManualClock, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    start = floor_minute(clock.now() - timedelta(hours=9, minutes=30))  # from yesterday: two files
    config = make_config(datasets=(), state_dir=None, profile="lean")
    cat = zone_catalogue()
    _, files = await backfill(config, clock, tmp_path / "whole", start=start, datasets=cat)
    assert len(files.files) == 2
    with pytest.raises(Interrupted):  # killed after the second day's file, before its progress
        await backfill(config, clock, tmp_path / "resumed", [Interrupt(2)], start=start, datasets=cat)
    saved = json.loads((tmp_path / "resumed" / "progress.json").read_text())
    assert saved["zone_ledgers"] and set(saved["zones"]) == set(world_zones(limited.traffic))
    done = datetime.fromisoformat(saved["done"])
    limited.reset_log()
    await backfill(config, clock, tmp_path / "resumed", start=start, datasets=cat)
    asked = [e.variables["from"] for e in limited.query_log if "from" in e.variables]
    first = done - config.quantile_window
    assert asked and min(asked) == first.strftime("%Y-%m-%dT%H:%M:%SZ"), "finished days are not asked again"
    whole = read(files.files)
    assert any(name.startswith("cloudflare_zone_") for name, _ in whole)
    for name in sorted(p.name for p in files.files):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


async def test_live_zone_counting_continues_from_the_backfill(
    limited: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    tmp_path: Path,
) -> None:
    config = make_config(datasets=(), profile="lean")
    cat = zone_catalogue()
    run, _ = await backfill(
        config, clock, tmp_path / "om", start=clock.now() - timedelta(hours=3), datasets=cat
    )
    progress = run.progress
    assert progress is not None
    clock.advance(600)
    bridge = make_bridge(config, catalogue=cat)
    await bridge.start()
    await bridge.poll_once()
    await bridge.poll_once()
    assert set(bridge.zones) == set(progress.zones)
    for z in bridge.zones.values():
        for name, ledger in z.ledgers.items():
            if name not in z.skipped:
                assert ledger.settled > progress.end, f"{z.label} {name}: continued from the backfill"
    want = zone_truth(
        limited.traffic,
        bridge.zone_datasets,
        dict.fromkeys(progress.zones, progress.start),
        ends(bridge),
        clock.now(),
    )
    assert len(want) > 20
    assert zone_counters(bridge) == want


async def test_a_live_state_of_zones_only_is_never_overwritten(
    limited: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    tmp_path: Path,
) -> None:
    config = make_config(datasets=())
    cat = zone_catalogue()
    bridge = make_bridge(config, catalogue=cat)
    await bridge.start()
    await bridge.poll_once()
    await bridge.close()
    assert config.state_dir is not None
    state = config.state_dir / "state.json"
    live = json.loads(state.read_text())
    assert live["zones"]
    live["accounts"] = {}  # a state of zones only (as when the accounts' datasets are off)
    state.write_text(json.dumps(live))
    limited.reset_log()
    with pytest.raises(BackfillError, match="already holds live counts \\(zone "):
        await backfill(config, clock, tmp_path / "om", start=clock.now() - timedelta(hours=3), datasets=cat)
    assert not [e for e in limited.query_log if "from" in e.variables], "refused before reading history"
