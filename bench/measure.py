"""One measurement per function; each runs in its own process (see bench.run) and returns plain JSON."""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import world
from bench.world import LagProbe, Scrapes, ms, quantile, scrape_loop
from otelbridge import server

Result = dict[str, Any]


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
    """Scrape back to back while one poll cycle (fetch, snapshot, render) runs."""
    done = asyncio.Event()
    tasks = [asyncio.create_task(scrape_loop(served.url, until=done)) for _ in range(scrapers)]
    probe = LagProbe().start()
    cycle = await served.cycle()
    await asyncio.sleep(0.5)  # scrapes right after the page swap, too
    done.set()
    out = Scrapes()
    for result in await asyncio.gather(*tasks):
        out.add(result)
    return cycle, out, await probe.stop()


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


async def _export(served: world.Served) -> float:
    reader = served.bridge.otlp_reader
    assert reader is not None
    started = time.perf_counter()
    await asyncio.to_thread(reader.force_flush, 60_000)
    return time.perf_counter() - started


async def load(series: int, cycles: int) -> Result:
    """Polls with and without a concurrent OTLP export, scrapes all along; peak RSS of the process."""
    accounts, scripts = world.shape(series)
    async with (
        world.otlp_receiver() as receiver,
        world.simulator(accounts, scripts) as sim,
        world.served_bridge(sim, otlp_endpoint=receiver.url) as served,
    ):
        alone: list[float] = []
        with_export: list[float] = []
        exports: list[float] = []
        quiet, busy = Scrapes(), Scrapes()
        worst_lag = 0.0
        for _ in range(cycles):
            poll, scraped, lag = await _during_cycle(served)
            alone.append(poll)
            quiet.add(scraped)
            exports.append(await _export(served))
            export_task = asyncio.create_task(_export(served))
            poll, scraped, lag2 = await _during_cycle(served)
            exports.append(await export_task)
            with_export.append(poll)
            busy.add(scraped)
            worst_lag = max(worst_lag, lag, lag2)
        return {
            "series": served.bridge.current().series,
            "poll_alone_s": round(max(alone), 3),
            "poll_with_export_s": round(max(with_export), 3),
            "export_s": round(max(exports), 3),
            "otlp_exports": receiver.exports,
            "otlp_mb_per_export": round(receiver.bytes / max(1, receiver.exports) / 1e6, 2),
            "scrapes_during_poll": latency(quiet),
            "scrapes_during_poll_and_export": latency(busy),
            "loop_lag_ms": ms(worst_lag),
            "peak_rss_mb": peak_rss_mb(),
        }


async def cpu_hour(scripts: int, minutes: int) -> Result:
    """CPU of the bridge process over simulated minutes: a poll each, 4 scrapes, one OTLP export."""
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
            await _export(served)
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
