"""Run the benchmark: `python -m bench.run [--quick] [--series 1000,10000,100000] [--json out.json]`.

Every measurement runs in a fresh subprocess (`--worker`), so peak RSS and CPU time are that
measurement's alone; the simulated Cloudflare API runs in a process of its own besides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from importlib import metadata
from typing import Any

from bench import measure

WORKERS: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "scrapes": measure.scrapes,
    "load": measure.load,
    "cpu_hour": measure.cpu_hour,
    "requests": measure.requests,
    "side_by_side": measure.side_by_side,
    "zones_default": measure.zones_default,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a minute-long check of the harness")
    p.add_argument("--series", help="comma-separated series counts (default 1000,10000,100000)")
    p.add_argument("--cpu-minutes", type=int, help="simulated minutes of the CPU measurement (default 60)")
    p.add_argument("--json", help="also write the raw results to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    return p


def plan(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    default = "300,3000" if args.quick else "1000,10000,100000"
    series = sorted(int(s) for s in (args.series or default).split(","))
    steps: list[tuple[str, dict[str, Any]]] = []
    for s in series:
        n, baseline_n = (60, 30) if s <= 10_000 else (40, 10)
        concurrent = 20 if s == series[-1] else 0
        steps.append(("scrapes", {"series": s, "n": n, "baseline_n": baseline_n, "concurrent": concurrent}))
    for s in [s for s in series if s >= 10_000] or series[-1:]:
        steps.append(("load", {"series": s, "cycles": 2}))
    minutes = args.cpu_minutes or (5 if args.quick else 60)
    steps.append(("cpu_hour", {"scripts": 100 if args.quick else 1000, "minutes": minutes}))
    for profile in ("lean", "full"):
        for otlp in (False, True):
            steps.append(
                (
                    "side_by_side",
                    {
                        "scripts": 100 if args.quick else 1000,
                        "minutes": minutes,
                        "profile": profile,
                        "otlp": otlp,
                    },
                )
            )
    zones = (
        {"zones": 10, "scripts": 100, "minutes": 3}
        if args.quick
        else {"zones": 100, "scripts": 1000, "minutes": 10}
    )
    steps.append(("zones_default", zones))
    accounts = [1, 3] if args.quick else [1, 5, 20, 50]
    steps.append(("requests", {"accounts": accounts, "scripts": 5, "cycles": 3}))
    return steps


def run_worker(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.run", "--worker", name, "--args", json.dumps(kwargs)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"bench: {name} {kwargs} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    print(f"  {name} {kwargs}: {result['bench_seconds']} s", file=sys.stderr, flush=True)
    return result


def machine() -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "opentelemetry-exporter-prometheus": version("opentelemetry-exporter-prometheus"),
        "prometheus-client": version("prometheus-client"),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        result = asyncio.run(WORKERS[args.worker](**json.loads(args.args or "{}")))
        print(json.dumps(result))
        return 0
    from bench import report

    info = machine()
    results = [(name, kwargs, run_worker(name, kwargs)) for name, kwargs in plan(args)]
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(report.markdown(info, results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
