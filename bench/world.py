"""The pieces every measurement needs: a simulated Cloudflare API in its own process sharing a clock
with the bridge, a bridge serving /metrics on a real port, scrapers, a loop-lag probe, an OTLP receiver
and the baseline (a raw prometheus_client collector rendering the same series on every scrape).
"""

from __future__ import annotations

import asyncio
import gzip
import math
import multiprocessing as mp
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from otelbridge import server
from otelbridge.bridge import Bridge
from otelbridge.catalogue import AverageGauge, Catalogue, SourcedMetric
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.config import Config
from otelbridge.docs import prometheus_name
from otelbridge.poller import RetryPolicy
from otelbridge.snapshot import Snapshot

START = datetime(2026, 11, 26, 9, 0, 30, tzinfo=UTC)
TOKEN = "sim-token"
SERIES_PER_SCRIPT = 36  # measured: 9 counters x ~1.5 statuses + 26 quantile and sample-interval gauges
SCRIPTS_PER_ACCOUNT = 100


class SharedClock:
    """A manual clock in shared memory: the bridge moves it, the simulator process reads it."""

    def __init__(self, value: Synchronized[float]) -> None:
        self._value = value

    @classmethod
    def create(cls, start: datetime = START) -> SharedClock:
        return cls(mp.get_context("spawn").Value("d", start.timestamp(), lock=False))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._value.value, UTC)

    def advance(self, seconds: float) -> None:
        self._value.value += seconds


def shape(series: int) -> tuple[int, int]:
    """(accounts, scripts per account) giving about `series` series, 100 scripts per account at most."""
    scripts = max(1, round(series / SERIES_PER_SCRIPT))
    accounts = math.ceil(scripts / SCRIPTS_PER_ACCOUNT)
    return accounts, math.ceil(scripts / accounts)


# --- the simulated API, in its own process so its CPU and memory are not the bridge's -------------


ALL_REQUESTS = "all"  # the key of every GraphQL request in the simulator's counts


def _simulator_main(
    value: Synchronized[float], accounts: int, scripts: int, zones: int, conn: Connection
) -> None:
    asyncio.run(_simulate(SharedClock(value), accounts, scripts, zones, conn))


async def _simulate(clock: SharedClock, accounts: int, scripts: int, zones: int, conn: Connection) -> None:
    from otelbridge.simulator import Simulator, Traffic

    traffic = Traffic.scaled(7, accounts=accounts, scripts_per_account=scripts, zones_per_account=zones)
    sim = Simulator(traffic=traffic, clock=clock)

    async def log(request: web.Request) -> web.Response:
        # GraphQL requests seen so far, by account: the bridge process counts them per cycle.
        counts: dict[str, int] = {ALL_REQUESTS: 0}
        for entry in sim.query_log:
            if entry.endpoint == "graphql":
                counts[ALL_REQUESTS] += 1  # zone requests name zones, not accounts
                for tag in entry.account_tags:
                    counts[tag] = counts.get(tag, 0) + 1
        return web.json_response(counts)

    sim.app.router.add_get("/bench/graphql-requests", log)
    await sim.start()
    conn.send(sim.port)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # any message: stop
    await sim.stop()


@dataclass
class SimulatorProcess:
    clock: SharedClock
    port: int
    process: Any
    conn: Connection

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    async def graphql_requests(self) -> dict[str, int]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.port}/bench/graphql-requests") as r,
        ):
            counts: dict[str, int] = await r.json()
            return counts


@asynccontextmanager
async def simulator(accounts: int, scripts: int, zones: int = 2) -> AsyncIterator[SimulatorProcess]:
    """The simulated API in its own process: `accounts` accounts of `scripts` Workers and `zones` zones."""
    clock = SharedClock.create()
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(
        target=_simulator_main, args=(clock._value, accounts, scripts, zones, theirs), name="bench-simulator"
    )
    proc.start()
    port = await asyncio.to_thread(ours.recv)
    try:
        yield SimulatorProcess(clock, port, proc, ours)
    finally:
        ours.send("stop")
        await asyncio.to_thread(proc.join, 10)
        if proc.is_alive():
            proc.kill()


# --- the bridge ---------------------------------------------------------------------------------


def config(api_url: str, otlp_endpoint: str | None = None, profile: str = "full") -> Config:
    return Config(
        profile=profile,
        credentials=Credentials(token=Secret(TOKEN)),
        api_url=api_url,
        poll_interval=timedelta(seconds=60),
        delay=timedelta(minutes=1),
        settle=timedelta(minutes=5),
        lookback=timedelta(minutes=10),
        quantile_window=timedelta(minutes=5),
        max_series=200_000,
        state_dir=None,
        request_timeout=timedelta(seconds=60),
        rate_limit=100_000,
        otlp_endpoint=otlp_endpoint,
    )


async def _no_sleep(seconds: float) -> None:
    return None


@dataclass
class Served:
    bridge: Bridge
    sim: SimulatorProcess
    url: str  # /metrics of the bridge

    async def cycle(self) -> float:
        """One poll cycle one simulated minute later; returns its wall seconds."""
        self.sim.clock.advance(60)
        started = time.perf_counter()
        await self.bridge.poll_once()
        return time.perf_counter() - started

    async def exported(self) -> float:
        """Wait for the OTLP export the last poll started in the background (if any); returns the
        seconds waited. A bridge with OTLP on exports after every poll: measurements call this
        between cycles, so one cycle's export does not run into the next cycle's poll."""
        started = time.perf_counter()
        await self.bridge.otlp_idle()
        return time.perf_counter() - started


@asynccontextmanager
async def served_bridge(
    sim: SimulatorProcess, otlp_endpoint: str | None = None, warm_cycles: int = 3, profile: str = "full"
) -> AsyncIterator[Served]:
    """A started bridge polled `warm_cycles` times, its /metrics on a real port."""
    bridge = Bridge(
        config(sim.base_url, otlp_endpoint, profile),
        sim.clock,
        retry=RetryPolicy(attempts=3, backoff=0.0),
        sleep=_no_sleep,
        instance_id="bench",
    )
    await bridge.start()
    runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
    served = Served(bridge, sim, f"http://127.0.0.1:{port}/metrics")
    try:
        await bridge.poll_once()
        for _ in range(warm_cycles - 1):
            await served.exported()
            await served.cycle()
        await served.exported()
        yield served
    finally:
        await runner.cleanup()
        await bridge.close()


# --- scrapes ------------------------------------------------------------------------------------


@dataclass
class Scrapes:
    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    bytes: int = 0

    def add(self, other: Scrapes) -> None:
        self.seconds += other.seconds
        self.failures += other.failures
        self.bytes = max(self.bytes, other.bytes)


async def scrape(session: aiohttp.ClientSession, url: str, gzip_ok: bool = True) -> tuple[float, bytes]:
    """One scrape as Prometheus does it; returns (seconds, body as received on the wire)."""
    headers = {"Accept-Encoding": "gzip" if gzip_ok else "identity"}
    started = time.perf_counter()
    async with session.get(url, headers=headers, auto_decompress=False) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
    return time.perf_counter() - started, body


async def scrape_loop(
    url: str, *, count: int | None = None, until: asyncio.Event | None = None, gzip_ok: bool = True
) -> Scrapes:
    """Scrape back to back `count` times, or until `until` is set; failures are counted, not raised."""
    out = Scrapes()
    timeout = aiohttp.ClientTimeout(total=10)  # Prometheus's default scrape timeout
    async with aiohttp.ClientSession(timeout=timeout) as session:
        done = 0
        while (count is None or done < count) and not (until is not None and until.is_set()):
            done += 1
            try:
                seconds, body = await scrape(session, url, gzip_ok)
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                out.failures += 1
                continue
            out.seconds.append(seconds)
            out.bytes = len(body)
    return out


def _crowd_main(url: str, scrapers: int, conn: Connection) -> None:
    async def crowd() -> None:
        done = asyncio.Event()
        tasks = [asyncio.create_task(scrape_loop(url, until=done)) for _ in range(scrapers)]
        conn.send("started")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # any message: stop
        done.set()
        out = Scrapes()
        for result in await asyncio.gather(*tasks):
            out.add(result)
        conn.send((out.seconds, out.failures, out.bytes))

    asyncio.run(crowd())


@asynccontextmanager
async def crowd(url: str, scrapers: int) -> AsyncIterator[Scrapes]:
    """`scrapers` scraping back to back from a process of their own, as Prometheus servers do (their
    CPU is not the bridge's); the Scrapes yielded are filled in when the block ends."""
    ours, theirs = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=_crowd_main, args=(url, scrapers, theirs), name="crowd")
    proc.start()
    await asyncio.to_thread(ours.recv)
    out = Scrapes()
    try:
        yield out
    finally:
        ours.send("stop")
        seconds, failures, size = await asyncio.to_thread(ours.recv)
        out.add(Scrapes(seconds, failures, size))
        await asyncio.to_thread(proc.join, 10)


def body_text(body: bytes) -> str:
    return (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).decode()


def quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- event-loop lag -----------------------------------------------------------------------------


class LagProbe:
    """Wakes every `period` seconds and records how late it woke: the longest the loop was blocked."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, loop.time() - due)

    def start(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def reset(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.worst


# --- an OTLP/HTTP receiver that only counts -----------------------------------------------------


@dataclass
class OtlpReceiver:
    exports: int = 0
    bytes: int = 0
    url: str = ""

    def app(self) -> web.Application:
        async def metrics(request: web.Request) -> web.Response:
            body = await request.read()
            self.exports += 1
            self.bytes += len(body)
            # An empty ExportMetricsServiceResponse is zero bytes of protobuf.
            return web.Response(body=b"", content_type="application/x-protobuf")

        application = web.Application(client_max_size=1 << 30)
        application.router.add_post("/v1/metrics", metrics)
        return application


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    runner, port = await server.serve(receiver.app(), "127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


# --- the baseline: a raw prometheus_client collector over the same snapshot ---------------------


class RawCollector(Collector):
    """Renders the bridge's current snapshot straight into prometheus_client families, per scrape."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        catalogue: Catalogue = bridge.catalogue
        self._kinds = {}
        for d in catalogue.datasets:
            for c in d.counters:
                self._kinds[c.name] = (c.unit, c.description, True)
            gauges: tuple[SourcedMetric | AverageGauge, ...] = (
                *d.quantile_gauges,
                *d.average_gauges,
                *d.level_gauges,
            )
            for g in gauges:
                self._kinds[g.name] = (g.unit, g.description, False)
        for m in catalogue.self_metrics:
            self._kinds[m.name] = (m.unit, m.description, m.kind == "counter")

    def collect(self) -> Iterable[Metric]:
        current: Snapshot = self._bridge.current()
        for name, (unit, description, counter) in self._kinds.items():
            points = current.observe(name)
            if not points:
                continue
            full = prometheus_name(name, unit, counter)
            family: Metric
            if counter:
                family = CounterMetricFamily(full.removesuffix("_total"), description)
            else:
                family = GaugeMetricFamily(full, description)
            for point in points:
                attributes = point.attributes or {}
                labels = {k.replace(".", "_"): str(v) for k, v in attributes.items()}
                family.add_sample(full, labels, point.value)
            yield family


def baseline_app(bridge: Bridge) -> web.Application:
    """/metrics rendered on every scrape from a raw collector, on a worker thread (as prometheus_client
    does in its own HTTP server), gzipped when the scraper accepts it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RawCollector(bridge))

    def render(gzip_ok: bool) -> bytes:
        body = generate_latest(registry)
        return gzip.compress(body) if gzip_ok else body

    async def metrics(request: web.Request) -> web.Response:
        gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
        body = await asyncio.to_thread(render, gzip_ok)
        headers = {"Content-Encoding": "gzip"} if gzip_ok else {}
        return web.Response(body=body, headers=headers, content_type="text/plain")

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    return application
