"""`otelbridge backfill`: its options, and running it with the configuration of `run`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from otelbridge import otlp
from otelbridge.backfill import STEPS, Backfill, BackfillError, Options, Sink
from otelbridge.backfill_report import Reporter, describe
from otelbridge.clock import SystemClock
from otelbridge.cloudflare.errors import CloudflareError
from otelbridge.config import Config, ConfigError, parse_duration
from otelbridge.openmetrics import FileSink
from otelbridge.otlp_backfill import OtlpExportFailed, OtlpSink
from otelbridge.windows import floor_minute

log = logging.getLogger("otelbridge.backfill")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PROGRESS_FILE = "progress.json"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backfill",
        help="import the history Cloudflare keeps (about 31 days) as OpenMetrics files and/or over OTLP",
    )
    p.add_argument("--config", type=Path, help="the configuration file of `run` (environment variables win)")
    p.add_argument("--since", help="how far back, e.g. 30d (default: everything Cloudflare still keeps)")
    p.add_argument("--from", dest="start", help="first minute, UTC, e.g. 2026-11-01T00:00Z")
    p.add_argument(
        "--to",
        dest="end",
        help="end (exclusive), UTC; default: the newest settled minute (live counting's start)",
    )
    p.add_argument("--step", choices=tuple(STEPS), default="1m", help="time between samples (default 1m)")
    p.add_argument("--output", type=Path, help="directory for the OpenMetrics files (one per UTC day)")
    p.add_argument("--otlp", action="store_true", help="send the samples to the configured OTLP endpoint")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="label on every sample of the files: the scrape's job and instance, e.g. job=otelbridge",
    )
    p.add_argument(
        "--rate-limit", type=int, help="queries per 5 minutes for the backfill (default rate_limit)"
    )
    p.add_argument("--no-state", action="store_true", help="do not write the live bridge's state file")
    p.add_argument("--progress", type=Path, help="progress file (default: <output>/progress.json)")


def _minute(option: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: expected a UTC time like 2026-11-01T00:00Z, got {text!r}") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment != floor_minute(moment):
        raise ConfigError(f"{option}: must be a whole minute, got {text!r}")
    return moment


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _LABEL.match(name):
            raise ConfigError(f"--label {pair!r}: expected NAME=VALUE with a Prometheus label name")
        out[name] = value
    return out


def options(args: argparse.Namespace, now: datetime) -> Options:
    if args.since and args.start:
        raise ConfigError("--since: give either --since or --from, not both")
    start = _minute("--from", args.start) if args.start else None
    if args.since:
        start = floor_minute(now - parse_duration("--since", args.since))
    end = _minute("--to", args.end) if args.end else None
    if start is not None and end is not None and end <= start:
        raise ConfigError("--to: must be after the start")
    if args.rate_limit is not None and args.rate_limit < 1:
        raise ConfigError("--rate-limit: expected a positive number of queries per 5 minutes")
    return Options(
        start=start, end=end, step=STEPS[args.step], handover=not args.no_state, rate_limit=args.rate_limit
    )


def sinks(args: argparse.Namespace, config: Config) -> list[Sink]:
    out: list[Sink] = []
    if args.output:
        out.append(FileSink(args.output, _labels(args.label)))
    elif args.label:
        raise ConfigError("--label: labels are for the files of --output")
    if args.otlp:
        exporter = otlp.otlp_exporter(config)
        if exporter is None:
            raise ConfigError("--otlp: no OTLP endpoint; set OTEL_EXPORTER_OTLP_ENDPOINT")
        out.append(OtlpSink(exporter, config))
    if not out:
        raise ConfigError("--output: say where the samples go (--output DIR and/or --otlp)")
    return out


def progress_path(args: argparse.Namespace, config: Config) -> Path:
    if args.progress:
        return Path(args.progress)
    if args.output:
        return Path(args.output) / PROGRESS_FILE
    if config.state_dir is not None:
        return config.state_dir / f"backfill-{PROGRESS_FILE}"
    raise ConfigError("--progress: give a progress file (there is neither --output nor a state_dir)")


async def run(args: argparse.Namespace, config: Config) -> int:
    clock = SystemClock()
    backfill_sinks = sinks(args, config)
    with Reporter(sys.stderr.isatty()) as reporter:
        backfill = Backfill(
            config,
            options(args, clock.now()),
            backfill_sinks,
            progress_path(args, config),
            clock,
            report=reporter,
        )
        try:
            await backfill.run()
        except BackfillError as exc:
            print(f"otelbridge: backfill: {exc}", file=sys.stderr)
            return 2
        except (CloudflareError, OtlpExportFailed) as exc:
            print(
                f"otelbridge: backfill stopped ({type(exc).__name__}: {exc}); run it again to resume",
                file=sys.stderr,
            )
            return 1
        finally:
            for sink in backfill_sinks:
                close = getattr(sink, "close", None)
                if close is not None:
                    await asyncio.to_thread(close)
    log.info("backfill done: %s", describe(backfill))
    return 0
