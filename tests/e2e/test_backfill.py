"""Two simulated days imported into a real Prometheus, continued by the live bridge, proven with PromQL.

The backfill writes OpenMetrics files, the real `promtool tsdb create-blocks-from openmetrics`
turns them into blocks, a real Prometheus starts on them and scrapes the live bridge that continues
from the backfill's state file; increase() over every hour, including the one across the seam,
equals the simulated API's ground truth for every series, of the accounts' Workers and of their
zones' HTTP requests. The same history sent over OTLP through the real Collector into Prometheus
(remote write, out-of-order ingestion) gives the same increases.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import subprocess
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from servers import COLLECTOR_CONFIG_DIR, CollectorProcess, PrometheusServer
from test_bridge_pipeline import served  # noqa: F401  (fixture)

from otelbridge import otlp
from otelbridge.backfill import STEPS, Backfill, Options
from otelbridge.bridge import Bridge
from otelbridge.catalogue import Catalogue, combine, load, parse_dataset
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.openmetrics import FileSink
from otelbridge.otlp_backfill import OtlpSink
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.backfill_truth import Exact, add, exact_totals, increases
from tests.datasets import workers
from tests.integration.test_datasets import TINY
from tests.integration.test_zones import ends
from tests.zones import zone_truth

pytestmark = pytest.mark.e2e

HOUR = timedelta(hours=1)
DAYS = 2
KEEP = {
    "cloud_account_id",
    "faas_name",
    "cloudflare_workers_status",
    "cloudflare_zone_id",
    "cloudflare_zone_name",
    "cloudflare_cache_status",
    "http_response_status_code",
}
HTTP = "httpRequestsAdaptiveGroups"


def catalogue() -> Catalogue:
    """Workers, a per-script test dataset, and a zone dataset (conftest turns zone datasets off:
    the tests' configs turn them on with `datasets=()`)."""
    base = load()
    return combine(
        (workers(base), parse_dataset(TINY, "tinyScripts.yaml"), base.dataset(HTTP)), base.self_metrics
    )


def counter_names(config: Config, base: Catalogue) -> list[str]:
    from otelbridge.docs import prometheus_name

    selected = config.catalogue(base)
    return [prometheus_name(c.name, c.unit, True) for d in selected.datasets for _, c in d.exported_counters]


def promql_increases(
    prom: PrometheusServer, names: list[str], selector: str, window_ms: int, at: float
) -> dict[Any, float]:
    out = {}
    for name in names:
        for item in prom.query(f"increase({name}{{{selector}}}[{window_ms}ms])", at=at):
            labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k in KEEP))
            out[(name, labels)] = float(item["value"][1])
    return out


def compare(got: dict[Any, float], want: dict[Any, float], where: str) -> None:
    wrong = {k: (got.get(k), v) for k, v in want.items() if v and got.get(k) != v}
    wrong.update({k: (v, want.get(k)) for k, v in got.items() if v != want.get(k, 0.0)})
    assert not wrong, f"{where}: {len(wrong)} series differ (got, want), e.g. {list(wrong.items())[:3]}"


def truth(
    sim: Simulator,
    config: Config,
    base: Catalogue,
    accounts: Collection[str],
    zones: Collection[str],
    start: datetime,
    end: datetime | Mapping[str, datetime],
    as_of: datetime | None = None,
) -> Exact:
    """Exact totals over [start, end) of the accounts' datasets and of the zones' (`end` by zone
    for the live zones, each at its own watermark)."""
    datasets = config.catalogue(base).datasets
    account_datasets = [d for d in datasets if d.scope == "account"]
    zone_datasets = [d for d in datasets if d.scope == "zone"]
    stop = end if isinstance(end, datetime) else max(end.values())
    out = exact_totals(sim.traffic, account_datasets, accounts, start, stop, as_of)
    ends_by_zone = dict.fromkeys(zones, end) if isinstance(end, datetime) else end
    of_zones = zone_truth(
        sim.traffic,
        zone_datasets,
        dict.fromkeys(zones, start),
        ends_by_zone,
        as_of or sim.clock.now(),
        set(zones),
    )
    for (name, labels), value in of_zones.items():
        key = (name, tuple((k, v) for k, v in labels if k in KEEP))
        out[key] = out.get(key, Fraction(0)) + Fraction(value)
    return out


def cumulative(
    sim: Simulator,
    config: Config,
    base: Catalogue,
    accounts: Any,
    zones: Collection[str],
    bounds: list[datetime],
) -> list[Exact]:
    """Exact totals from bounds[0] to each bound."""
    out: list[Exact] = [{}]
    for a, b in itertools.pairwise(bounds):
        out.append(add(out[-1], truth(sim, config, base, accounts, zones, a, b)))
    return out


def hourly(
    prom: PrometheusServer, names: list[str], selector: str, bounds: list[datetime], totals: list[Exact]
) -> None:
    """increase() over each hour between consecutive bounds equals the truth."""
    for i in range(1, len(bounds)):
        got = promql_increases(prom, names, selector, 3_600_000, bounds[i].timestamp())
        compare(got, increases(totals[i - 1], totals[i]), f"the hour ending {bounds[i].isoformat()}")


def promtool_blocks(promtool: str, files: list[Path], data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for f in files:
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(f), str(data)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"promtool refused {f.name}: {done.stdout[-500:]} {done.stderr[-500:]}"


async def backfill(config: Config, base: Catalogue, sinks: list[Any], out: Path, clock: ManualClock) -> Any:
    start = floor_minute(clock.now() - timedelta(days=DAYS))
    options = Options(start=start, step=STEPS["1m"])
    run = Backfill(config, options, sinks, out / "progress.json", clock, catalogue=base)
    return await run.run()


async def test_promtool_blocks_and_the_live_scrape_give_exact_hourly_increases_across_the_seam(
    prometheus_binary: str,
    promtool_binary: str,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    served: Callable[[Bridge], Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    # Prometheus stamps scraped samples with the real time: the simulated time is the real time.
    clock.set(datetime.now(UTC))
    sim.knobs.ingestion_delay = 120
    base = catalogue()
    config = make_config(profile="lean", datasets=())
    bridge = make_bridge(config, catalogue=base)
    port = await served(bridge)
    prom = PrometheusServer(prometheus_binary, scrape_targets=[f"127.0.0.1:{port}"])
    selector = f'job="target0",instance="127.0.0.1:{port}"'  # the scrape's labels, given to the files
    sink = FileSink(tmp_path / "om", {"job": "target0", "instance": f"127.0.0.1:{port}"})
    progress = await backfill(config, base, [sink], tmp_path / "om", clock)
    seam = progress.end
    assert len(sink.files) == DAYS + 1
    promtool_blocks(promtool_binary, sink.files, prom.data_dir)

    prom.start()  # from the main thread: its death signal is tied to the thread that started it
    try:
        await bridge.start()
        assert all(s.ledgers["tinyScripts"].counted == seam for s in bridge.accounts.values())
        zones = sorted(progress.zones)
        assert len(zones) > 3
        for _ in range(3):  # the live bridge continues from the backfill's end; Prometheus scrapes it
            clock.set(datetime.now(UTC))
            await bridge.poll_once()
            await asyncio.sleep(2.5)
        polled = clock.now()
        counted = next(iter(bridge.accounts.values())).ledgers["tinyScripts"].counted
        assert counted > seam
        zone_ends = ends(bridge)  # the live zones continued from the backfilled ledgers
        assert set(zone_ends) == set(zones) and min(zone_ends.values()) > seam
        await asyncio.sleep(2.5)  # a few scrapes of the final values
        query = f"timestamp(cloudflare_workers_requests_total{{{selector}}})"
        stamps = await asyncio.to_thread(prom.query, query)
        last = max(float(s["value"][1]) for s in stamps)

        names = counter_names(config, base)
        accounts = list(bridge.accounts)
        # The hour ending at the last scrape, from its first whole minute: it spans the seam.
        top = datetime.fromtimestamp(math.ceil((last - 3600) / 60) * 60, UTC)
        assert top < seam
        bounds = [top - HOUR * k for k in range(DAYS * 24, -1, -1) if top - HOUR * k >= progress.start]
        totals = cumulative(sim, config, base, accounts, zones, [progress.start, *bounds])[1:]
        live_part = add(
            truth(sim, config, base, accounts, (), top, counted, polled),
            truth(sim, config, base, (), zones, top, zone_ends, polled),
        )
        at_seam = cumulative(sim, config, base, accounts, zones, [progress.start, seam])[1]
        want = increases(totals[-1], add(totals[-1], live_part))
        # A series first seen after the seam starts in Prometheus at its first scrape, like any new
        # scraped counter: its first increment is not an increase(). Every other series must match.
        want = {k: v for k, v in want.items() if at_seam.get(k, Fraction(0)) or not v}
        window = round((last - top.timestamp()) * 1000)
        got = await asyncio.to_thread(promql_increases, prom, names, selector, window, last)
        got = {k: v for k, v in got.items() if k in want}
        assert len(want) > 40 and any(name.startswith("cloudflare_zone_") for name, _ in want)
        compare(got, want, "the hour across the seam")
        for name in names:  # one continuous counter: the live one starts at the backfilled total
            resets = await asyncio.to_thread(prom.query, f"resets({name}{{{selector}}}[{window}ms])", last)
            assert resets and {float(r["value"][1]) for r in resets} == {0.0}, f"{name} went down at the seam"
        assert len(bounds) >= DAYS * 24 - 1
        await asyncio.to_thread(hourly, prom, names, selector, bounds, totals)
    finally:
        await asyncio.to_thread(prom.stop)


async def test_an_otlp_backfill_through_the_collector_gives_the_same_hourly_increases(
    prometheus_binary: str,
    collector_binary: Path,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.set(datetime.now(UTC))
    sim.knobs.ingestion_delay = 120
    base = catalogue()
    for name in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    prom = PrometheusServer(prometheus_binary, out_of_order_window=f"{DAYS + 1}d")
    prom.start()
    try:
        config_text = (COLLECTOR_CONFIG_DIR / "otlp-to-remote-write.yaml").read_text()
        with CollectorProcess(
            collector_binary, config_text, env={"PRW_ENDPOINT": prom.remote_write_url}
        ) as c:
            config = make_config(profile="lean", datasets=(), otlp_endpoint=c.http_endpoint)
            exporter = otlp.otlp_exporter(config)
            assert exporter is not None
            sink = OtlpSink(exporter, config)
            progress = await backfill(config, base, [sink], tmp_path, clock)
            sink.close()
        assert config.state_dir is not None
        instance = (config.state_dir / "instance-id").read_text().strip()
        selector = f'job="otelbridge",instance="{instance}"'
        names = counter_names(config, base)
        end = progress.end
        bounds = [end - HOUR * k for k in range(DAYS * 24, -1, -1) if end - HOUR * k >= progress.start]
        assert len(progress.zones) > 3
        totals = cumulative(sim, config, base, progress.accounts, progress.zones, [progress.start, *bounds])[
            1:
        ]
        assert any(name.startswith("cloudflare_zone_") for name, _ in totals[-1])
        deadline = time.monotonic() + 60
        while True:  # remote write delivers in the background: wait for the newest hour to be complete
            try:
                await asyncio.to_thread(hourly, prom, names, selector, bounds[-2:], totals[-2:])
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the newest hour never arrived complete"
                await asyncio.sleep(1)
        await asyncio.to_thread(hourly, prom, names, selector, bounds, totals)
    finally:
        await asyncio.to_thread(prom.stop)
