"""The developer-platform datasets (R2, D1, KV, Durable Objects, Queues, Pages Functions) counted
exactly through the one request per account and cycle, against the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from otelbridge.bridge import Bridge
from otelbridge.catalogue import Catalogue, Dataset, MetricChoice, SourcedMetric
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Simulator
from otelbridge.windows import MINUTE, floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import expected_counters, parse_prometheus
from tests.tamper import TamperProxy, settings_node

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
R2 = "r2OperationsAdaptiveGroups"


def platform(catalogue: Catalogue) -> tuple[Dataset, ...]:
    return tuple(d for d in catalogue.datasets if d.dataset != WORKERS)


def label(attribute: str) -> str:
    return attribute.replace(".", "_")


def series(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def page_values(bridge: Bridge, names: set[str]) -> Series:
    """Samples of these names on /metrics, by name and every label."""
    out: Series = {}
    for family in text_string_to_metric_families(bridge.page.page.body.decode()):
        for sample in family.samples:
            if sample.name in names:
                key = (sample.name, series(dict(sample.labels)))
                assert key not in out, f"duplicate series {key}"
                out[key] = sample.value
    return out


def counter_names(datasets: Iterable[Dataset]) -> set[str]:
    return {prometheus_name(c.name, c.unit, True) for d in datasets for _, c in d.exported_counters}


def gauge_names(datasets: Iterable[Dataset]) -> set[str]:
    gauges = [(g.name, g.unit) for d in datasets for g in (*d.level_gauges, *d.average_gauges)]
    return {prometheus_name(name, unit, False) for name, unit in gauges}


def kept(dataset: Dataset, counter: SourcedMetric) -> tuple[str, ...]:
    return tuple(a for a in dataset.counter_key if a not in dataset.optional or a in counter.attributes)


def truth_counters(
    sim: Simulator, datasets: Iterable[Dataset], accounts: Iterable[str], start: datetime, end: datetime
) -> Series:
    """Every exported counter series, as the simulator's totals grouped by the counter's own
    attributes (the simulator sums over the others, not otelbridge)."""
    out: Series = {}
    now = sim.clock.now()
    for d in datasets:
        for _, c in d.exported_counters:
            attributes = kept(d, c)
            by = [d.dimension(a).field for a in attributes]
            for account in accounts:
                totals = sim.traffic.analytics.totals(d.dataset, account, start, end, by=by, as_of=now)
                for key, row in totals.items():
                    value = row["count"] if c.aggregate == "count" else row["sum"][c.field]
                    labels = {label(a): str(v) for a, v in zip(attributes, key, strict=True)}
                    name = prometheus_name(c.name, c.unit, True)
                    out[(name, series({"cloud_account_id": account, **labels}))] = value / c.divisor
    return out


def truth_gauges(
    sim: Simulator, datasets: Iterable[Dataset], accounts: Iterable[str], settled: datetime, window: timedelta
) -> Series:
    """Level gauges: the newest snapshot per group before `settled` (within the dataset's level
    window); average gauges: the group's average over the quantile window."""
    out: Series = {}
    now = sim.clock.now()
    analytics = sim.traffic.analytics
    for d in datasets:
        by = [d.dimension(a).field for a in d.gauge_key]
        for account in accounts:

            def labelled(key: tuple[Any, ...], account: str = account, d: Dataset = d) -> dict[str, str]:
                return {"cloud_account_id": account, **{label(a): str(v) for a, v in zip(d.gauge_key, key)}}

            newest: dict[tuple[Any, ...], dict[str, Any]] = {}
            minutes = d.level_window or int(window / MINUTE)
            for m in range(minutes, 0, -1):  # oldest first: newer minutes overwrite
                start = settled - MINUTE * m
                newest.update(analytics.totals(d.dataset, account, start, start + MINUTE, by=by, as_of=now))
            for key, row in newest.items() if d.level_gauges else ():
                for g in d.level_gauges:
                    name = prometheus_name(g.name, g.unit, False)
                    out[(name, series(labelled(key)))] = row[g.aggregate][g.field] / g.divisor
            if d.average_gauges:
                rows = analytics.totals(d.dataset, account, settled - window, settled, by=by, as_of=now)
                for key, row in rows.items():
                    for a in d.average_gauges:
                        name = prometheus_name(a.name, a.unit, False)
                        out[(name, series(labelled(key)))] = row["avg"][a.field]
    return out


async def run(bridge: Bridge, sim: Simulator, clock: ManualClock, minutes: int) -> list[set[str]]:
    """Poll once a minute; the aliases of each account's one data request per cycle."""
    await bridge.poll_once()  # also reads each account's dataset settings
    requests: list[set[str]] = []
    for _ in range(minutes):
        clock.advance(60)
        sim.reset_log()
        await bridge.poll_once()
        graphql = [e for e in sim.query_log if e.endpoint == "graphql" and e.datasets]
        assert sorted(e.account_tags for e in graphql) == sorted((a,) for a in bridge.accounts)
        requests += [set(e.datasets) for e in graphql]
    return requests


async def test_every_platform_dataset_is_exact_over_an_hour_of_late_data(
    sim: Simulator, clock: ManualClock, make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 150
    sim.knobs.sampling = True  # estimates and sample intervals above 1, as Cloudflare's
    bridge = make_bridge()  # profile full: every metric
    await bridge.start()
    start = floor_minute(clock.now() - bridge.config.lookback)
    requests = await run(bridge, sim, clock, 60)

    datasets = platform(bridge.catalogue)
    assert len(datasets) == 8
    # Every dataset in every account's one request: sums of the open minutes, or the levels.
    for aliases in requests:
        for d in datasets:
            assert f"{d.dataset}_{'open' if d.counters else 'levels'}" in aliases
    end = next(iter(bridge.accounts.values())).ledgers[WORKERS].counted
    assert all(ledger.counted == end for s in bridge.accounts.values() for ledger in s.ledgers.values())

    want = truth_counters(sim, datasets, bridge.accounts, start, end)
    assert {name for name, _ in want} == counter_names(datasets), "every counter has series"
    assert len(want) > 500
    assert page_values(bridge, counter_names(datasets)) == want

    settled = floor_minute(clock.now() - bridge.config.settle)
    gauges = truth_gauges(sim, datasets, bridge.accounts, settled, bridge.config.quantile_window)
    assert {name for name, _ in gauges} == gauge_names(datasets), "every gauge has series"
    assert page_values(bridge, gauge_names(datasets)) == gauges
    # Workers beside them, unchanged.
    page = parse_prometheus(bridge.page.page.body.decode(), "cloudflare_workers_")
    workers = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    assert {k: v for k, v in page.items() if k[0].endswith("_total")} == workers
