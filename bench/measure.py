"""One measurement per function; each runs in its own process (see bench.run) and returns plain JSON."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from bench import world
from bench.world import LagProbe, Scrapes, ms, quantile, scrape_loop
from otelbridge import server

Result = dict[str, Any]
T = TypeVar("T")


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)  # bytes on macOS


def latency(scrapes: Scrapes) -> Result:
    s = scrapes.seconds
    return {
        "n": len(s),
        "p50_ms": ms(quantile(s, 0.5)),
        "p99_ms": ms(quantile(s, 0.99)),
        "max_ms": ms(max(s, default=float("nan"))),
        "failures": scrapes.failures,
        "bytes": scrapes.bytes,
    }


def workers_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("cloudflare_workers_"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _one_body(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        _, body = await world.scrape(session, url)
    return world.body_text(body)


async def _during_cycle(served: world.Served, scrapers: int = 1) -> tuple[float, Scrapes, float]:
    """Scrape back to back while one poll cycle (fetch, snapshot, render) runs, and just after the
    page swap. Several scrapers scrape from a process of their own."""

    async def cycle() -> float:
        seconds = await served.cycle()
        await asyncio.sleep(0.5)  # scrapes right after the page swap, too
        return seconds

    if scrapers == 1:
        return await _scraping(served.url, cycle())
    async with world.crowd(served.url, scrapers) as out:
        probe = LagProbe().start()
        seconds = await cycle()
    return seconds, out, await probe.stop()


async def scrapes(series: int, n: int, baseline_n: int, concurrent: int) -> Result:
    """Scrape latency of the bridge's page and of the raw baseline, quiet and during a poll."""
    accounts, scripts = world.shape(series)
    async with world.simulator(accounts, scripts) as sim, world.served_bridge(sim) as served:
        bridge = served.bridge
        runner, port = await server.serve(world.baseline_app(bridge), "127.0.0.1", 0)
        baseline_url = f"http://127.0.0.1:{port}/metrics"
        try:
            ours_text, base_text = await _one_body(served.url), await _one_body(baseline_url)
            ours = await scrape_loop(served.url, count=n)
            identity = await scrape_loop(served.url, count=n, gzip_ok=False)
            base = await scrape_loop(baseline_url, count=baseline_n)
            cycle, during, lag = await _during_cycle(served)
            result: Result = {
                "series": bridge.current().series,
                "accounts": accounts,
                "scripts": accounts * scripts,
                "render_s": round(bridge.page.page.render_seconds, 3),
                "poll_cycle_s": round(cycle, 3),
                "ours": latency(ours),
                "ours_identity": latency(identity),
                "baseline": latency(base),
                "during_poll": latency(during),
                "loop_lag_during_poll_ms": ms(lag),
                "values_equal": workers_values(ours_text) == workers_values(base_text),
            }
            if concurrent:
                cycle, crowd, lag = await _during_cycle(served, scrapers=concurrent)
                result["concurrent"] = {"scrapers": concurrent, **latency(crowd), "loop_lag_ms": ms(lag)}
            return result
        finally:
            await runner.cleanup()


async def _scraping(url: str, work: Awaitable[T]) -> tuple[T, Scrapes, float]:
    """Await `work` while one scraper scrapes back to back and a probe records the loop's worst lag."""
    done = asyncio.Event()
    scraper = asyncio.create_task(scrape_loop(url, until=done))
    probe = LagProbe().start()
    try:
        result = await work
    finally:
        done.set()
        lag = await probe.stop()
        scraped = await scraper
    return result, scraped, lag


async def load(series: int, cycles: int) -> Result:
    """Polls with OTLP off and on, the export each OTLP poll starts in the background, and scrapes
    and the loop's worst lag during each; then a poll landing while an export runs. Peak RSS.

    "Off" is the same bridge with its OTLP exporter detached for that poll (no export starts), so
    both kinds of poll see the same data, process and machine load; they alternate. After an
    OTLP poll the bench waits for its export before the next poll, as a 60 s poll interval does.
    """
    accounts, scripts = world.shape(series)
    async with (
        world.otlp_receiver() as receiver,
        world.simulator(accounts, scripts) as sim,
        world.served_bridge(sim, otlp_endpoint=receiver.url) as served,
    ):
        bridge, url = served.bridge, served.url
        exporter = bridge.otlp_exporter
        assert exporter is not None
        off: list[float] = []
        on: list[float] = []
        exports: list[float] = []
        in_off, in_on, in_export = Scrapes(), Scrapes(), Scrapes()
        lag_off = lag_on = lag_export = 0.0
        count, size = receiver.exports, receiver.bytes
        for _ in range(cycles):
            bridge.otlp_exporter = None
            try:
                poll, scraped, lag = await _scraping(url, served.cycle())
            finally:
                bridge.otlp_exporter = exporter
            off.append(poll)
            in_off.add(scraped)
            poll, scraped, lag2 = await _scraping(url, served.cycle())
            on.append(poll)
            in_on.add(scraped)
            lag_off, lag_on = max(lag_off, lag), max(lag_on, lag2)
            export, scraped, lag = await _scraping(url, served.exported())
            exports.append(export)
            in_export.add(scraped)
            lag_export = max(lag_export, lag)
        count, size = receiver.exports - count, receiver.bytes - size
        # Catching up, the bridge polls without pause: the next poll lands while the export runs
        # (its fetch shares the GIL with the export's collection, its render waits for the SDK's
        # lock), and exactly one more export follows the running one.
        before = receiver.exports
        await served.cycle()
        landing = await served.cycle()
        await served.exported()
        exports_after_landing = receiver.exports - before
        # CPU of a poll with OTLP on, its export included, nothing else running in this process.
        cpu: list[float] = []
        for _ in range(cycles):
            started = time.process_time()
            await served.cycle()
            await served.exported()
            cpu.append(time.process_time() - started)
        _, crowd, crowd_lag = await _during_cycle(served, scrapers=20)
        await served.exported()
        return {
            "series": bridge.current().series,
            "poll_otlp_off_s": round(max(off), 3),
            "poll_otlp_on_s": round(max(on), 3),
            "export_s": round(max(exports), 3),
            "otlp_polls": cycles,
            "otlp_exports": count,
            "otlp_mb_per_export": round(size / max(1, count) / 1e6, 2),
            "scrapes_during_poll_otlp_off": latency(in_off),
            "scrapes_during_poll_otlp_on": latency(in_on),
            "scrapes_during_export": latency(in_export),
            "loop_lag_poll_otlp_off_ms": ms(lag_off),
            "loop_lag_poll_otlp_on_ms": ms(lag_on),
            "loop_lag_export_ms": ms(lag_export),
            "poll_landing_in_export_s": round(landing, 3),
            "exports_after_landing": exports_after_landing,
            "cpu_per_poll_otlp_on_s": round(max(cpu), 3),
            "concurrent_scrapes_during_poll_otlp_on": {"scrapers": 20, **latency(crowd)},
            "loop_lag_concurrent_ms": ms(crowd_lag),
            "peak_rss_mb": peak_rss_mb(),
        }


async def cpu_hour(scripts: int, minutes: int) -> Result:
    """CPU of the bridge process over simulated minutes: a poll each, then 4 scrapes while the OTLP
    export that poll started runs in the background, then the end of that export."""
    accounts = max(1, scripts // world.SCRIPTS_PER_ACCOUNT)
    per = scripts // accounts
    async with (
        world.otlp_receiver() as receiver,
        world.simulator(accounts, per) as sim,
        world.served_bridge(sim, otlp_endpoint=receiver.url) as served,
    ):
        probe = LagProbe().start()
        wall, cpu = time.perf_counter(), time.process_time()
        renders = 0.0
        for _ in range(minutes):
            await served.cycle()
            renders += served.bridge.page.page.render_seconds
            await scrape_loop(served.url, count=4)
            await served.exported()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {
            "scripts": accounts * per,
            "series": served.bridge.current().series,
            "minutes": minutes,
            "cpu_s_per_hour": round(cpu * 60 / minutes, 1),
            "wall_s": round(wall, 1),
            "render_s_per_poll": round(renders / minutes, 3),
            "loop_lag_ms": ms(await probe.stop()),
        }


async def side_by_side(scripts: int, minutes: int, profile: str, otlp: bool) -> Result:
    """The shape operators compare exporters in: one account, `scripts` Workers, a poll per
    simulated minute and a scrape every 15 s (4 per poll), for `minutes`. Series, CPU seconds per
    hour, peak RSS and scrape latency of the whole process (the simulator runs in its own)."""
    async with contextlib.AsyncExitStack() as stack:
        endpoint = (await stack.enter_async_context(world.otlp_receiver())).url if otlp else None
        sim = await stack.enter_async_context(world.simulator(1, scripts))
        served = await stack.enter_async_context(world.served_bridge(sim, endpoint, profile=profile))
        scraped = Scrapes()
        cpu_per_poll: list[float] = []
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(minutes):
            before = time.process_time()
            await served.cycle()
            await served.exported()
            cpu_per_poll.append(time.process_time() - before)
            scraped.add(await scrape_loop(served.url, count=4))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        body = await _one_body(served.url)
        return {
            "profile": profile,
            "otlp": otlp,
            "scripts": scripts,
            "series": served.bridge.current().series,
            "page_mb": round(len(body.encode()) / 1e6, 2),
            "minutes": minutes,
            "cpu_s_per_hour": round(cpu * 60 / minutes, 1),
            "cpu_per_poll_s": round(quantile(cpu_per_poll, 0.5), 3),
            "wall_s": round(wall, 1),
            "peak_rss_mb": peak_rss_mb(),
            "scrape": latency(scraped),
        }


async def zones_default(zones: int, scripts: int, minutes: int) -> Result:
    """The lean default on one account with `zones` zones and `scripts` Workers: series, GraphQL
    requests per cycle, page render time, CPU per poll and peak RSS (Prometheus only)."""
    async with (
        world.simulator(1, scripts, zones) as sim,
        world.served_bridge(sim, profile="lean") as served,
    ):
        before = await sim.graphql_requests()
        renders, cpu_per_poll = [], []
        scraped = Scrapes()
        for _ in range(minutes):
            cpu = time.process_time()
            await served.cycle()
            cpu_per_poll.append(time.process_time() - cpu)
            renders.append(served.bridge.page.page.render_seconds)
            scraped.add(await scrape_loop(served.url, count=4))
        after = await sim.graphql_requests()
        return {
            "zones": zones,
            "scripts": scripts,
            "series": served.bridge.current().series,
            "requests_per_cycle": (after[world.ALL_REQUESTS] - before[world.ALL_REQUESTS]) / minutes,
            "render_s": round(quantile(renders, 0.5), 3),
            "cpu_per_poll_s": round(quantile(cpu_per_poll, 0.5), 3),
            "peak_rss_mb": peak_rss_mb(),
            "scrape": latency(scraped),
        }


async def requests(accounts: list[int], scripts: int, cycles: int) -> Result:
    """GraphQL requests the simulator saw per account per steady-state cycle."""
    rows = []
    for n in accounts:
        async with world.simulator(n, scripts) as sim, world.served_bridge(sim, warm_cycles=2) as served:
            before = await sim.graphql_requests()
            for _ in range(cycles):
                await served.cycle()
            after = await sim.graphql_requests()
            per_account = [(after.get(a, 0) - before.get(a, 0)) / cycles for a in served.bridge.accounts]
            rows.append(
                {
                    "accounts": n,
                    "per_cycle": sum(per_account),
                    "per_account_min": min(per_account),
                    "per_account_max": max(per_account),
                }
            )
    return {"rows": rows}
