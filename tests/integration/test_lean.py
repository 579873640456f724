"""The lean default: few series per Worker, the same exact numbers, more only when asked for."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from graphql import print_ast

from otelbridge.bridge import Bridge
from otelbridge.catalogue import Dataset, MetricChoice
from otelbridge.clock import ManualClock
from otelbridge.cloudflare import queries
from otelbridge.config import Config, ConfigError, load
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.datasets import STATUS, WORKERS, workers
from tests.metrics_text import SeriesValues, parse_prometheus, series_on

# The names users chart and alert on; they are fixed, whatever else changes.
REQUESTS = "cloudflare_workers_requests_total"
ERRORS = "cloudflare_workers_errors_total"
CPU = "cloudflare_workers_cpu_time_seconds_total"
CPU_QUANTILES = "cloudflare_workers_invocation_cpu_time_seconds"


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def lean_truth(
    sim: Simulator, accounts: list[str], start: datetime, end: datetime, now: datetime
) -> SeriesValues:
    """Ground truth in the lean shape, from the simulator's own totals: requests by status,
    errors, CPU time and billable duration summed over statuses per script."""
    duration = next(c for c in workers().counters if c.field == "duration")
    from otelbridge.docs import prometheus_name

    duration_name = prometheus_name(duration.name, duration.unit, True)
    out: SeriesValues = {}
    for account in accounts:
        per_script: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for (script, status), sums in sim.traffic.series_totals(account, start, end, as_of=now).items():
            out[
                (
                    REQUESTS,
                    _labels(cloud_account_id=account, faas_name=script, cloudflare_workers_status=status),
                )
            ] = sums["requests"]
            for field in ("errors", "cpuTimeUs", "duration"):
                per_script[script][field].append(sums[field])
        for script, fields in per_script.items():
            labels = _labels(cloud_account_id=account, faas_name=script)
            out[(ERRORS, labels)] = sum(fields["errors"])
            out[(CPU, labels)] = sum(int(v) for v in fields["cpuTimeUs"]) / 1_000_000
            out[(duration_name, labels)] = math.fsum(fields["duration"])
    return out


async def _run(bridge: Bridge, clock: ManualClock, polls: int) -> datetime:
    await bridge.start()
    for _ in range(polls):
        await bridge.poll_once()
        clock.advance(60)
    await bridge.poll_once()
    return clock.now()


async def test_lean_default_is_exact_and_small(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge], make_config: Callable[..., Config]
) -> None:
    sim.knobs.ingestion_delay = 240
    bridge = make_bridge(make_config(profile="lean"))
    start = floor_minute(clock.now() - bridge.config.lookback)
    now = await _run(bridge, clock, 30)
    accounts = list(bridge.accounts)
    end = bridge.accounts[accounts[0]].ledgers[WORKERS].counted

    got = parse_prometheus(bridge.page.page.body.decode())
    counters = {k: v for k, v in got.items() if k[0].endswith("_total")}
    want = lean_truth(sim, accounts, start, end, now)
    assert len(want) > 50
    assert counters == want

    families = {name for name, _ in got}
    assert families == {name for name, _ in want} | {CPU_QUANTILES}
    scripts = {(dict(labels)["cloud_account_id"], dict(labels)["faas_name"]) for _, labels in got}
    per_script = len(got) / len(scripts)
    assert per_script <= 15, per_script
    # The snapshot's count is every series on the page: Workers and the other datasets.
    assert bridge.current().series == series_on(bridge.page.page.body.decode(), "cloudflare_")


async def test_full_profile_exports_every_metric_with_status(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge], make_config: Callable[..., Config]
) -> None:
    lean = make_bridge(make_config(profile="lean", state_dir=None))
    full = make_bridge(make_config(profile="full", state_dir=None))
    for bridge in (lean, full):
        await bridge.start()
        await bridge.poll_once()
    lean_series, full_series = (
        series_on(b.page.page.body.decode(), "cloudflare_workers_") for b in (lean, full)
    )
    assert full_series > 4 * lean_series
    names = {name for name, _ in parse_prometheus(full.page.page.body.decode())}
    catalogue = workers()
    assert len([n for n in names if n.endswith("_total")]) == len(catalogue.counters)
    assert len([n for n in names if not n.endswith("_total")]) == len(catalogue.quantile_gauges) + len(
        catalogue.average_gauges
    )


async def test_a_metric_turned_on_later_starts_from_everything_counted(
    sim: Simulator,
    clock: ManualClock,
    make_bridge: Callable[..., Bridge],
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    """Every field is counted in every profile, so enabling subrequests after a restart from
    saved state exports the whole count, not only what follows the switch."""
    lean = make_config(profile="lean", state_dir=tmp_path / "state")
    first = make_bridge(lean)
    start = floor_minute(clock.now() - lean.lookback)
    await _run(first, clock, 10)
    await first.close()
    choice = (("cloudflare.workers.subrequests", MetricChoice(enabled=True)),)
    second = make_bridge(replace(lean, metrics=choice))
    now = await _run(second, clock, 10)
    end = next(iter(second.accounts.values())).ledgers[WORKERS].counted
    got = {k: v for k, v in parse_prometheus(second.page.page.body.decode()).items() if "subrequests" in k[0]}
    want = {}
    for account in second.accounts:
        for (script, status), sums in sim.traffic.series_totals(account, start, end, as_of=now).items():
            labels = _labels(cloud_account_id=account, faas_name=script, cloudflare_workers_status=status)
            want[("cloudflare_workers_subrequests_total", labels)] = sums["subrequests"]
    assert got == want
    assert sum(want.values()) > 0


def test_queries_ask_only_for_gauges_that_are_on() -> None:
    catalogue = workers()
    lean, full = catalogue.select("lean"), catalogue.select("full")

    def text(dataset: Dataset) -> str:
        request = queries.AliasRequest(
            dataset, "q", queries.Shape.GAUGES, datetime(2026, 1, 1), datetime(2026, 1, 1)
        )
        return print_ast(queries.account_request("a" * 32, (request,), {WORKERS: 100}, ("0.99",))[0])

    lean_text, full_text = text(lean), text(full)
    assert "cpuTimeP99" in lean_text and "cpuTimeP99" in full_text
    assert "wallTimeP99" not in lean_text and "wallTimeP99" in full_text
    assert "sampleInterval" not in lean_text and "sampleInterval" in full_text


def test_counters_keep_every_field_and_choices_apply() -> None:
    catalogue = workers()
    selected = catalogue.select(
        "lean",
        {
            "cloudflare.workers.cpu_time": MetricChoice(attributes=(STATUS,)),
            "cloudflare.workers.requests": MetricChoice(enabled=False),
            "cloudflare.workers.invocation.wall_time": MetricChoice(enabled=True),
        },
    )
    assert [c.field for c in selected.counters] == [c.field for c in catalogue.counters]
    exported = {c.name: c.attributes for _, c in selected.exported_counters}
    assert "cloudflare.workers.requests" not in exported
    assert exported["cloudflare.workers.cpu_time"] == (STATUS,)
    assert {g.name for g in selected.quantile_gauges} == {
        "cloudflare.workers.invocation.cpu_time",
        "cloudflare.workers.invocation.wall_time",
    }


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("profile: tiny\n", "profile"),
        ("metrics: {cloudflare.workers.nope: {enabled: true}}\n", "metrics.cloudflare.workers.nope"),
        (
            "metrics: {cloudflare.workers.errors: {enabled: maybe}}\n",
            "metrics.cloudflare.workers.errors.enabled",
        ),
        ("metrics: {cloudflare.workers.errors: {colour: red}}\n", "metrics.cloudflare.workers.errors"),
        (
            "metrics: {cloudflare.workers.errors: {attributes: [faas.name]}}\n",
            "metrics.cloudflare.workers.errors.attributes",
        ),
        ("metrics: [cloudflare.workers.errors]\n", "metrics"),
    ],
)
def test_bad_metric_choices_name_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = tmp_path / "otelbridge.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert str(caught.value).startswith(f"{key}:"), caught.value


def test_profile_from_the_environment() -> None:
    assert load(None, environ={"OTELBRIDGE_PROFILE": "FULL"}).profile == "full"
    assert load(None, environ={}).profile == "lean"
