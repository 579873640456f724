"""The developer-platform datasets (R2, D1, KV, Durable Objects, Queues, Pages Functions) counted
exactly through the one request per account and cycle, against the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from otelbridge.bridge import Bridge
from otelbridge.catalogue import Catalogue, Dataset, MetricChoice, SourcedMetric, load
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
    """The datasets polled beside Workers."""
    return tuple(d for d in catalogue.enabled if d.dataset != WORKERS)


def label(attribute: str) -> str:
    return attribute.replace(".", "_")


def series(account: str, attributes: Iterable[str], key: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    """A series' sorted Prometheus labels: the account's and the group's (integers as decimals)."""
    labels = {label(a): str(v) for a, v in zip(attributes, key, strict=True)}
    return tuple(sorted({"cloud_account_id": account, **labels}.items()))


def page_values(bridge: Bridge, names: set[str]) -> Series:
    """Samples of these names on /metrics, by name and every label."""
    out: Series = {}
    for family in text_string_to_metric_families(bridge.page.page.body.decode()):
        for sample in family.samples:
            if sample.name in names:
                key = (sample.name, tuple(sorted(sample.labels.items())))
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
                    name = prometheus_name(c.name, c.unit, True)
                    out[(name, series(account, attributes, key))] = value / c.divisor
    return out


def truth_gauges(
    bridge: Bridge, sim: Simulator, datasets: Iterable[Dataset], accounts: Iterable[str], since: datetime
) -> Series:
    """Level gauges: the newest snapshot per group of the settled minutes the bridge has asked
    for (from its first gauge window on), within the dataset's level window; average gauges: the
    group's average over the last quantile window. `since`: the start of the bridge's first gauge window."""
    window = bridge.config.quantile_window
    settled = floor_minute(sim.clock.now() - bridge.config.settle)
    out: Series = {}
    now = sim.clock.now()
    analytics = sim.traffic.analytics
    for d in datasets:
        by = [d.dimension(a).field for a in d.gauge_key]
        for account in accounts:
            newest: dict[tuple[Any, ...], dict[str, Any]] = {}
            minutes = min(int((settled - since) / MINUTE), d.level_window)
            for m in range(max(minutes, int(window / MINUTE)), 0, -1):  # oldest first: newer overwrite
                start = settled - MINUTE * m
                newest.update(analytics.totals(d.dataset, account, start, start + MINUTE, by=by, as_of=now))
            for key, row in newest.items() if d.level_gauges else ():
                for g in d.level_gauges:
                    name = prometheus_name(g.name, g.unit, False)
                    out[(name, series(account, d.gauge_key, key))] = row[g.aggregate][g.field] / g.divisor
            if d.average_gauges:
                rows = analytics.totals(d.dataset, account, settled - window, settled, by=by, as_of=now)
                for key, row in rows.items():
                    for a in d.average_gauges:
                        name = prometheus_name(a.name, a.unit, False)
                        out[(name, series(account, d.gauge_key, key))] = row["avg"][a.field]
    return out


def first_window(bridge: Bridge) -> datetime:
    """The start of the gauge window of the bridge's next poll (call before its first)."""
    settled = floor_minute(bridge.clock.now() - bridge.config.settle)
    return settled - bridge.config.quantile_window


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
    start, since = floor_minute(clock.now() - bridge.config.lookback), first_window(bridge)
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

    gauges = truth_gauges(bridge, sim, datasets, bridge.accounts, since)
    assert {name for name, _ in gauges} == gauge_names(datasets), "every gauge has series"
    assert page_values(bridge, gauge_names(datasets)) == gauges
    # Workers beside them, unchanged.
    page = parse_prometheus(bridge.page.page.body.decode(), "cloudflare_workers_")
    workers = expected_counters(sim.traffic, bridge.catalogue, bridge.accounts, start, end, as_of=clock.now())
    assert {k: v for k, v in page.items() if k[0].endswith("_total")} == workers


def lean_series_labels(bridge: Bridge, name: str) -> set[frozenset[str]]:
    """The label names of each series of one metric on /metrics."""
    return {frozenset(dict(labels)) for n, labels in page_values(bridge, {name}) if n == name}


# Every attribute that is off by default, configured on for R2 operations, D1 and Workers.
OPT_IN = (
    (
        "cloudflare.r2.operations",
        MetricChoice(
            None,
            (
                "cloudflare.r2.operation",
                "cloudflare.r2.status",
                "http.response.status_code",
                "cloudflare.r2.storage_class",
                "cloudflare.client.region",
            ),
        ),
    ),
    ("cloudflare.d1.rows_read", MetricChoice(None, ("cloudflare.d1.region",))),
    (
        "cloudflare.workers.requests",
        MetricChoice(None, ("cloudflare.workers.status", "cloudflare.workers.dispatch_namespace")),
    ),
)
CHANGED = {R2, "d1AnalyticsAdaptiveGroups", WORKERS}
KV, KV_OPERATIONS = "kvOperationsAdaptiveGroups", "cloudflare.kv.operations"


async def test_lean_is_small_and_configured_attributes_restart_only_their_dataset(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    sim.knobs.ingestion_delay = 120
    # Every platform dataset is opt-in: turned on by naming one of its metrics, but KV.
    on = {
        d.counters[0].name if d.counters else d.level_gauges[0].name: MetricChoice(enabled=True)
        for d in load().datasets
        if d.dataset not in (WORKERS, KV) and d.scope == "account"
    }
    config = make_config(profile="lean", metrics=tuple(on.items()))
    first = make_bridge(config)
    await first.start()
    start = floor_minute(clock.now() - config.lookback)
    requests = await run(first, sim, clock, 8)
    assert not any(alias.startswith(KV) for aliases in requests for alias in aliases)
    assert all(KV not in s.ledgers for s in first.accounts.values())
    lean = platform(first.catalogue)
    account_datasets = {d.dataset for d in first.catalogue.datasets if d.scope == "account"}
    assert account_datasets - {d.dataset for d in lean} == {WORKERS, KV}
    # Attributes off by default are not even grouped by.
    assert all(first.catalogue.dataset(d).counter_key == load_key(d, default_only=True) for d in CHANGED)
    assert lean_series_labels(first, "cloudflare_r2_operations_total") == {
        frozenset(
            {
                "cloud_account_id",
                "cloudflare_r2_bucket_name",
                "cloudflare_r2_operation",
                "cloudflare_r2_status",
            }
        )
    }
    assert lean_series_labels(first, "cloudflare_d1_read_queries_total") == {
        frozenset({"cloud_account_id", "cloudflare_d1_database_id"})
    }
    end = next(iter(first.accounts.values())).ledgers[WORKERS].counted
    assert page_values(first, counter_names(lean)) == truth_counters(sim, lean, first.accounts, start, end)
    await first.close()

    clock.advance(120)
    metrics = {**on, **dict(OPT_IN), KV_OPERATIONS: MetricChoice(enabled=True)}
    second = make_bridge(replace(config, metrics=tuple(metrics.items())))
    await second.start()
    restart = floor_minute(clock.now() - config.lookback)
    await run(second, sim, clock, 8)
    end = next(iter(second.accounts.values())).ledgers[WORKERS].counted
    datasets = platform(second.catalogue)
    r2 = second.catalogue.dataset(R2)
    assert r2.counter_key == load_key(R2, default_only=False)
    resumed = tuple(d for d in datasets if d.dataset not in {*CHANGED, KV})
    want = truth_counters(sim, resumed, second.accounts, start, end)
    restarted = [d for d in datasets if d.dataset in {*CHANGED, KV}]  # KV: polled from now on
    want |= truth_counters(sim, restarted, second.accounts, restart, end)
    assert page_values(second, counter_names(datasets)) == want
    assert any("http_response_status_code" in dict(labels) for name, labels in want if "r2" in name)
    # Workers: the dispatch namespace (empty outside Workers for Platforms) is grouped by and exported.
    workers = parse_prometheus(second.page.page.body.decode(), "cloudflare_workers_requests")
    assert workers == {
        k: v
        for k, v in expected_counters(
            sim.traffic, second.catalogue, second.accounts, restart, end, as_of=clock.now()
        ).items()
        if k[0] == "cloudflare_workers_requests_total"
    }
    assert "cloudflare_workers_dispatch_namespace" in second.page.page.body.decode()


def load_key(dataset: str, default_only: bool) -> tuple[str, ...]:
    d = load().dataset(dataset)
    return tuple(a for a in d.counter_key if d.dimension(a).default or not default_only)


async def test_a_dataset_disabled_for_one_account_is_skipped_and_the_rest_stay_exact(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    off = ("kvOperationsAdaptiveGroups", "r2StorageAdaptiveGroups")
    proxy = TamperProxy(sim.base_url)
    await proxy.start()
    try:
        target = sorted(a.tag for a in sim.traffic.accounts)[0]

        def disabled(body: Any) -> Any:
            node = settings_node(body)
            assert node is not None
            if proxy.variables.get("account") == target:
                for name in off:
                    node[name]["enabled"] = False
            return body

        proxy.rewrite_settings = disabled
        sim.knobs.ingestion_delay = 120
        bridge = make_bridge(make_config(api_url=proxy.base_url))
        await bridge.start()
        start, since = floor_minute(clock.now() - bridge.config.lookback), first_window(bridge)
        await run(bridge, sim, clock, 10)
        graphql = [e for e in sim.query_log if e.endpoint == "graphql" and e.datasets]
        for entry in graphql:
            asked = {alias.rsplit("_", 1)[0] for alias in entry.datasets}
            assert (set(off) & asked == set()) == (entry.account_tags == (target,)), entry.account_tags
        assert all(s.up for s in bridge.accounts.values())

        datasets = platform(bridge.catalogue)
        others = tuple(a for a in bridge.accounts if a != target)
        skipped = tuple(d for d in datasets if d.dataset in off)
        kept_datasets = tuple(d for d in datasets if d.dataset not in off)
        end = bridge.accounts[target].ledgers[WORKERS].counted
        want = truth_counters(sim, kept_datasets, bridge.accounts, start, end)
        want |= truth_counters(sim, skipped, others, start, end)
        assert any(target in dict(labels).values() for _, labels in want)
        assert page_values(bridge, counter_names(datasets)) == want
        gauges = truth_gauges(bridge, sim, kept_datasets, bridge.accounts, since)
        gauges |= truth_gauges(bridge, sim, skipped, others, since)
        assert page_values(bridge, gauge_names(datasets)) == gauges
    finally:
        await proxy.stop()
