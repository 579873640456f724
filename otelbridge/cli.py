"""Command line: `otelbridge run | demo | check | simulate | docs`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from otelbridge import __version__, logs, server, web_config
from otelbridge.bridge import Bridge
from otelbridge.catalogue import load as load_catalogue
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.cloudflare.errors import CloudflareError
from otelbridge.config import Config, ConfigError, load, require_credentials

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

    check = sub.add_parser("check", help="validate configuration and credentials; print what would be polled")
    check.add_argument("--config", type=Path)

    demo = sub.add_parser(
        "demo", help="run against the built-in simulated Cloudflare API (no account needed)"
    )
    demo.add_argument("--port", type=int, default=9464, help="port for /metrics (default 9464)")
    demo.add_argument("--host", default="127.0.0.1")
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
        logs.setup(config.log_level, config.credentials.secrets())
        if args.command == "check":
            return asyncio.run(_check(config))
        return asyncio.run(_serve(config))
    except ConfigError as exc:
        print(f"otelbridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _web(config: Config) -> web_config.WebConfig | None:
    return web_config.load(config.web_config_file) if config.web_config_file else None


async def _serve(config: Config, bridge: Bridge | None = None, banner: str = "") -> int:
    bridge = bridge or Bridge(config)
    web = _web(config)
    tls = web.tls_context() if web else None
    await bridge.start()
    await asyncio.to_thread(bridge.page.render)
    try:
        runner, port = await server.serve(
            server.app(bridge.page, bridge.status, web), config.prometheus_host, config.prometheus_port, tls
        )
    except OSError as exc:
        await bridge.close()
        where = f"{config.prometheus_host}:{config.prometheus_port}"
        raise ConfigError(f"prometheus_port: cannot listen on {where} ({exc.strerror})") from None
    scheme = "https" if tls else "http"
    url = f"{scheme}://{config.prometheus_host}:{port}/metrics"
    log.info("serving %s", url)
    if banner:
        print(banner.format(url=url, status=url.removesuffix("metrics") + "status"), flush=True)
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


async def _check(config: Config) -> int:
    bridge = Bridge(replace(config, state_dir=None))
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


async def _demo(args: argparse.Namespace) -> int:
    from otelbridge.config import parse_duration

    logs.setup("INFO", [DEMO_TOKEN])
    sim = await _start_simulator(args, "127.0.0.1", 0)
    ingestion = timedelta(seconds=sim.knobs.ingestion_delay)
    config = Config(
        credentials=Credentials(token=Secret(DEMO_TOKEN)),
        api_url=sim.base_url,
        poll_interval=parse_duration("--poll-interval", args.poll_interval),
        delay=timedelta(minutes=1) + ingestion,
        settle=timedelta(minutes=2) + ingestion,
        lookback=timedelta(minutes=30),
        prometheus_host=args.host,
        prometheus_port=args.port,
        state_dir=None,
        profile=args.profile,
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
        "  status:  {status}\n"
        "  try:     curl -s {url} | grep cloudflare_workers_requests_total | head\n"
        f"{more}"
        "Press Ctrl-C to stop.\n"
    )
    try:
        return await _serve(config, banner=banner)
    finally:
        await sim.stop()


if __name__ == "__main__":
    sys.exit(main())
