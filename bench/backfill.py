"""The backfill benchmark: `python -m bench.backfill [--days 30] [--scripts 1000] [--step 1h]`.

Backfills `days` of one account with `scripts` Worker scripts from the simulated API (in its own
process, so its CPU and memory are not counted) into OpenMetrics files, and reports the GraphQL
requests per simulated day, the wall time, the peak RSS of the backfill process and the files' size.
The rate budget is lifted (rate_limit 100000): the figures are the backfill's own cost; at
Cloudflare's 300 queries per 5 minutes, requests / 60 gives the least wall time in minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import world
from otelbridge.backfill import STEPS, Backfill, Options
from otelbridge.openmetrics import FileSink


async def measure(days: float, scripts: int, step: str, directory: Path) -> dict[str, Any]:
    async with world.simulator(1, scripts) as sim:
        config = replace(world.config(sim.base_url, profile="lean"), accounts=())
        sink = FileSink(directory, {"job": "otelbridge"})
        start = sim.clock.now() - timedelta(days=days)
        run = Backfill(
            config, Options(start=start, step=STEPS[step]), [sink], directory / "progress.json", sim.clock
        )
        started = time.perf_counter()
        progress = await run.run()
        wall = time.perf_counter() - started
        assert progress is not None
    simulated_days = (progress.end - progress.start) / timedelta(days=1)
    requests = sum(progress.requests.values())
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "days": round(simulated_days, 3),
        "scripts": scripts,
        "step": step,
        "requests": requests,
        "requests_per_day": round(requests / simulated_days, 1),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(own.ru_utime + own.ru_stime, 1),  # the backfill's; the simulator's apart
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "file_bytes": sum(f.stat().st_size for f in sink.files),
        "files": len(sink.files),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--scripts", type=int, default=1000)
    p.add_argument("--step", choices=tuple(STEPS), default="1h")
    p.add_argument("--keep", type=Path, help="write the files here and keep them (default: a temporary dir)")
    args = p.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="otelbridge-backfill-bench-"))
    try:
        result = asyncio.run(measure(args.days, args.scripts, args.step, directory))
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
