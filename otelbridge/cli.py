"""Command line: `otelbridge run | demo | check | backfill | simulate | docs`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from otelbridge import __version__, backfill_cli, logs, otlp, server, statuspage, web_config
from otelbridge.bridge import Bridge
from otelbridge.catalogue import DatasetChoice
from otelbridge.catalogue import load as load_catalogue
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.cloudflare.errors import CloudflareError
from otelbridge.config import KEYS, Config, ConfigError, load, require_credentials

log = logging.getLogger("otelbridge")
EXIT_CONFIG = 2

DEMO_TOKEN = "sim-token"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="otelbridge", description="Cloudflare Workers analytics as OpenTelemetry metrics."
    )
    p.add_argument("--version", action="version", version=f"otelbridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="poll Cloudflare and serve /metrics (and OTLP when configured)")
    run.add_argument("--config", type=Path, help="YAML configuration file (environment variables win)")

    check = sub.add_parser(
        "check", help="validate configuration, print the plan, then poll once and report each account"
    )
    check.add_argument("--config", type=Path)

    demo = sub.add_parser(
        "demo", help="run against the built-in simulated Cloudflare API (no account needed)"
    )
    demo.add_argument(
        "--port", type=int, help="port for /metrics (default $OTEL_EXPORTER_PROMETHEUS_PORT, else 9464)"
    )
    demo.add_argument(
        "--host", help="address for /metrics (default $OTEL_EXPORTER_PROMETHEUS_HOST, else 127.0.0.1)"
    )
    demo.add_argument("--otlp-endpoint", help="also export OTLP here (default $OTEL_EXPORTER_OTLP_ENDPOINT)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the synthetic traffic")
    demo.add_argument("--poll-interval", default="15s")
    demo.add_argument(
        "--profile", choices=("lean", "full"), default="lean", help="lean (default) or full: every metric"
    )
    demo.add_argument(
        "--knob", action="append", default=[], metavar="NAME=VALUE", help="simulator realism knob"
    )

    sim = sub.add_parser("simulate", help="serve only the simulated Cloudflare API")
    sim.add_argument("--port", type=int, default=8787)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--token", default=DEMO_TOKEN, help=f"API token the simulator accepts (default {DEMO_TOKEN})"
    )
    sim.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE")

    backfill_cli.add_parser(sub)

    sub.add_parser("docs", help="print the metric reference (docs/metrics.md) generated from the catalogue")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "docs":
            from otelbridge.docs import metrics_markdown

            sys.stdout.write(metrics_markdown(load_catalogue()))
            return 0
        if args.command == "simulate":
            return asyncio.run(_simulate(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        config = load(args.config)
        require_credentials(config)
        otlp.check_protocol(config)
        logs.setup(config.log_level, config.credentials.secrets(), config.log_format)
        if args.command == "check":
            return asyncio.run(_check(config))
        if args.command == "backfill":
            return asyncio.run(backfill_cli.run(args, config))
        return asyncio.run(_serve(config))
    except ConfigError as exc:
        print(f"otelbridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _web(config: Config) -> web_config.WebConfig | None:
    return web_config.load(config.web_config_file) if config.web_config_file else None


async def _serve(config: Config, bridge: Bridge | None = None, banner: str = "") -> int:
    web = _web(config)
    tls = web.tls_context() if web else None
    bridge = bridge or Bridge(config)
    # Take the port before Cloudflare is contacted: a port in use is a one-line error at once.
    try:
        runner, port = await server.serve(
            server.app(bridge.page, bridge.status, web, statuspage.for_bridge(bridge)),
            config.prometheus_host,
            config.prometheus_port,
            tls,
        )
    except OSError as exc:
        await bridge.close()
        where = f"{config.prometheus_host}:{config.prometheus_port}"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"prometheus_port: cannot listen on {where}: {reason}") from None
    try:
        await bridge.start()
        await asyncio.to_thread(bridge.page.render)
    except BaseException:
        await runner.cleanup()
        await bridge.close()
        raise
    scheme = "https" if tls else "http"
    url = f"{scheme}://{config.prometheus_host}:{port}/metrics"
    log.info("serving %s", url)
    if banner:
        page = url.removesuffix("metrics")
        print(banner.format(url=url, page=page, status=page + "status"), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.run(stop)
    finally:
        await runner.cleanup()
        await bridge.close()
    return 0


def _zones(config: Config, datasets: str) -> str:
    if not datasets:
        return "none (no zone dataset enabled)"
    z = config.zones
    chosen = f"{', '.join(z.include)}" if z.include else "every zone of each account"
    excluded = f" except {', '.join(z.exclude)}" if z.exclude else ""
    return f"{chosen}{excluded}, listed every {_span(z.refresh)}; {datasets}"


def plan(config: Config, dataset: str, zone_datasets: str = "") -> str:
    """What `run` would do with this configuration, in words. Never the credential itself."""
    web = _web(config)
    scheme = "https" if web and web.tls_context() else "http"
    auth = ", basic auth" if web and web.users else ""
    endpoint = otlp.target(config)
    c = config
    lines = [
        ("Cloudflare API", f"{c.api_url} (credential: {c.credentials.identity})"),
        ("accounts", ", ".join(c.accounts) or "every account the credential can see (discovered)"),
        ("datasets", dataset),
        ("zones", _zones(c, zone_datasets)),
        ("poll interval", f"{c.poll_interval.total_seconds():g}s"),
        ("counting", f"a minute is counted once {_span(c.delay)} old and final once {_span(c.settle)} old; "
         f"first start looks back {_span(c.lookback)}"),
        ("metrics", f"profile {c.profile}" + (f", {len(c.metrics)} metric choice(s)" if c.metrics else "")),
        ("quantiles", f"{', '.join(c.quantile_set)} over {_span(c.quantile_window)}"),
        ("/metrics", f"{scheme}://{c.prometheus_host}:{c.prometheus_port}/metrics{auth}"),
        ("OTLP", f"{endpoint} ({otlp.protocol()})" if endpoint else "off (set OTEL_EXPORTER_OTLP_ENDPOINT)"),
        ("state dir", str(c.state_dir) if c.state_dir else "none (counting restarts from lookback)"),
        ("limits", f"max {c.max_series} series per metric, {c.rate_limit} queries per 5 minutes"),
    ]  # fmt: skip
    return "plan:\n" + "".join(f"  {name + ':':<16}{value}\n" for name, value in lines)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 and seconds else f"{seconds}s"


async def _check(config: Config) -> int:
    bridge = Bridge(replace(config, state_dir=None))
    names = (", ".join(d.dataset for d in datasets) for datasets in (bridge.datasets, bridge.zone_datasets))
    print(plan(config, *names), flush=True)
    await bridge.start()
    try:
        if bridge.discovery_error:
            print(f"otelbridge: cannot list accounts: {bridge.discovery_error}", file=sys.stderr)
            return 1
        await bridge.poll_once()
        status = bridge.status()
        print(json.dumps(status, indent=2))
        failed = [a for a, s in bridge.accounts.items() if not s.up]
        return 1 if failed or not bridge.accounts else 0
    except CloudflareError as exc:
        print(f"otelbridge: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        await bridge.close()


def _knobs(sim: Any, pairs: list[str]) -> None:
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in sim.knobs.names():
            raise ConfigError(
                f"--knob {pair!r}: expected NAME=VALUE with NAME one of {', '.join(sim.knobs.names())}"
            )
        try:
            sim.knobs.set(name, value)
        except ValueError:
            raise ConfigError(f"--knob {name}: invalid value {value!r}") from None


async def _start_simulator(args: argparse.Namespace, host: str, port: int) -> Any:
    from otelbridge.clock import SystemClock
    from otelbridge.simulator import Simulator, Traffic
    from otelbridge.simulator.auth import Credential

    token = getattr(args, "token", DEMO_TOKEN)
    credentials = [Credential("cli", token=token)]
    sim = Simulator(traffic=Traffic.default(seed=args.seed), clock=SystemClock(), credentials=credentials)
    _knobs(sim, args.knob)
    await sim.start(host=host, port=port)
    return sim


async def _simulate(args: argparse.Namespace) -> int:
    logs.setup("INFO", [])
    sim = await _start_simulator(args, args.host, args.port)
    shown = args.token if args.token == DEMO_TOKEN else "as given with --token"
    print(f"simulated Cloudflare API at {sim.base_url} (token: {shown})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()
    return 0


def _env(key: str) -> Any:
    """One configuration key from its environment variable, parsed as `run` would; None when unset."""
    parse, variable = KEYS[key]
    value = os.environ.get(variable, "").strip()
    return parse(variable, value) if value else None


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


async def _demo(args: argparse.Namespace) -> int:
    from otelbridge.config import parse_duration

    # Flags win over the standard environment variables, which win over the demo's defaults.
    endpoint_flag = args.otlp_endpoint and KEYS["otlp_endpoint"][0]("--otlp-endpoint", args.otlp_endpoint)
    config = Config(
        credentials=Credentials(token=Secret(DEMO_TOKEN)),
        poll_interval=parse_duration("--poll-interval", args.poll_interval),
        lookback=timedelta(minutes=30),
        prometheus_host=_first(args.host, _env("prometheus_host"), "127.0.0.1"),
        prometheus_port=_first(args.port, _env("prometheus_port"), 9464),
        otlp_endpoint=endpoint_flag or _env("otlp_endpoint"),
        state_dir=None,
    )
    otlp.check_protocol(config)
    logs.setup("INFO", [DEMO_TOKEN], _first(_env("log_format"), "text"))
    sim = await _start_simulator(args, "127.0.0.1", 0)
    ingestion = timedelta(seconds=sim.knobs.ingestion_delay)
    config = replace(
        config,
        api_url=sim.base_url,
        delay=timedelta(minutes=1) + ingestion,
        settle=timedelta(minutes=2) + ingestion,
        profile=args.profile,
        # every dataset the simulated API serves, the opt-in developer platform too
        datasets=tuple((d.dataset, DatasetChoice(enabled=True)) for d in load_catalogue().datasets),
    )
    more = (
        "  more:    this is the lean profile (the metrics most users chart); --profile full exports\n"
        "           every metric, or turn single ones on: see docs/metrics.md, `metrics:`\n"
        if args.profile == "lean"
        else ""
    )
    banner = (
        f"\notelbridge demo: polling the built-in simulated Cloudflare API at {sim.base_url}\n"
        "  metrics: {url}\n"
        "  status:  {page} (JSON: {status})\n"
        "  try:     curl -s {url} | grep -E 'cloudflare_(workers|zone)_requests_total' | head\n"
        "           (zones, R2, D1, KV, Durable Objects, Queues and Pages are on in the demo; outside it\n"
        "           the developer platform is opt-in: see docs/platform.md)\n"
        f"{more}"
        "Press Ctrl-C to stop.\n"
    )
    try:
        return await _serve(config, banner=banner)
    finally:
        await sim.stop()


if __name__ == "__main__":
    sys.exit(main())
