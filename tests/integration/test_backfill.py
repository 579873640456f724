"""`otelbridge backfill` against the simulated API over HTTP: exact files, Cloudflare's limits, resume,
the rate budget, the handover to live counting, and its command line."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otelbridge import cli
from otelbridge.backfill import STEPS, Backfill, BackfillError, Options, Sink
from otelbridge.bridge import Bridge
from otelbridge.catalogue import Catalogue, combine, load, parse_dataset
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.openmetrics import FileSink
from otelbridge.samples import Span
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.backfill_truth import exact_totals
from tests.conftest import TOKEN
from tests.datasets import WORKERS, workers
from tests.integration.test_datasets import TINY

KEPT = timedelta(hours=10)  # what the simulated Cloudflare keeps in these tests (notOlderThan)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, float]]


def catalogue() -> Catalogue:
    base = load()
    return combine((workers(base), parse_dataset(TINY, "tinyScripts.yaml")), base.self_metrics)


@pytest.fixture
def limited(sim: Simulator) -> Simulator:
    """Cloudflare's limits enforced, small: a page of 400 groups, 6 hours a query, 10 hours kept."""
    sim.knobs.enforce_limits = True
    sim.knobs.max_page_size = 400
    sim.knobs.max_duration = 6 * 3600
    sim.knobs.not_older_than = int(KEPT.total_seconds())
    sim.knobs.ingestion_delay = 120
    return sim


def read(files: Sequence[Path]) -> Samples:
    """Every sample of the files, checked by prometheus_client's strict OpenMetrics parser."""
    out: Samples = {}
    for f in files:
        for family in text_string_to_metric_families(f.read_text()):
            for s in family.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "job"))
                assert s.timestamp is not None
                when = int(s.timestamp.sec)
                series = out.setdefault((s.name, labels), {})
                assert when not in series, f"{s.name} {labels} twice at {when}"
                series[when] = s.value
    return out


async def backfill(
    config: Config,
    clock: ManualClock,
    out: Path,
    sinks: Sequence[Sink] | None = None,
    step: str = "1m",
    start: datetime | None = None,
    rate_limit: int | None = None,
    datasets: Catalogue | None = None,
) -> tuple[Backfill, FileSink]:
    files = FileSink(out, {"job": "otelbridge"})
    run = Backfill(
        config,
        Options(start=start, step=STEPS[step], rate_limit=rate_limit),
        [files, *(sinks or ())],
        out / "progress.json",
        clock,
        catalogue=datasets or catalogue(),
        sleep=_advance(clock),
    )
    await run.run()
    return run, files


def _advance(clock: ManualClock) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return sleep


async def test_files_hold_exact_cumulative_counters_and_quantiles_within_cloudflares_limits(
    limited: Simulator, clock: ManualClock, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(profile="lean")
    # Older than Cloudflare keeps: the backfill starts at the oldest minute it still serves.
    run, files = await backfill(config, clock, tmp_path / "om", start=clock.now() - 2 * KEPT)
    progress = run.progress
    assert progress is not None
    oldest = floor_minute(clock.now() - KEPT) + timedelta(minutes=1)
    assert progress.start == oldest and progress.end == floor_minute(clock.now() - config.settle)
    graphql = [e for e in limited.query_log if e.endpoint == "graphql"]
    assert {e.outcome for e in graphql} == {"ok"}, "no query broke a limit"
    data = [e for e in graphql if "from" in e.variables]
    assert len(data) == sum(progress.requests.values())
    assert min(e.variables["from"] for e in data) == oldest.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(progress.requests) == 3

    samples = read(files.files)
    datasets = config.catalogue(catalogue()).datasets
    start = progress.start
    checked = 0
    for hour in range(1, 11):
        at = start + timedelta(hours=hour)
        if at > progress.end:
            break
        want = exact_totals(limited.traffic, datasets, progress.accounts, start, at)
        stamp = int(at.timestamp())
        got = {
            key: series[stamp]
            for key, series in samples.items()
            if stamp in series and key[0].endswith("_total")
        }
        assert got == {k: float(v) for k, v in want.items()}, f"totals at {at}"
        checked += len(want)
    assert checked > 500
    # Every series' first sample is a zero, one step before its first minute counted.
    for key, series in samples.items():
        if key[0].endswith("_total"):
            first = min(series)
            assert series[first] == 0 or first == int(start.timestamp()), key

    # Quantiles: Cloudflare's own, per 5-minute window, stamped at the window's end.
    q = "cloudflare_workers_invocation_cpu_time_seconds"
    account = progress.accounts[0]
    window_end = (
        start + timedelta(hours=7) - (start - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(minutes=5)
    )
    for script in ("api-gateway", "cron-cleanup"):
        values = limited.traffic.quantiles(account, script, window_end - timedelta(minutes=5), window_end)
        labels = (("cloud_account_id", account), ("faas_name", script), ("quantile", "0.99"))
        if values:
            assert samples[(q, labels)][int(window_end.timestamp())] == values["cpuTimeP99"] / 1_000_000


class Interrupted(Exception):
    pass


class Interrupt:
    """A sink that stops the run once `after` spans were written (before their progress is saved)."""

    def __init__(self, after: int) -> None:
        self.after = after

    def write(self, span: Span) -> None:
        self.after -= 1
        if self.after == 0:
            raise Interrupted


async def test_an_interrupted_backfill_resumes_without_redoing_and_writes_the_same_files(
    limited: Simulator, clock: ManualClock, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    start = floor_minute(clock.now() - timedelta(hours=9, minutes=30))  # from yesterday: two files
    _, files = await backfill(make_config(state_dir=None), clock, tmp_path / "whole", start=start)
    assert len(files.files) == 2
    limited.reset_log()
    config = make_config(state_dir=None)
    with pytest.raises(Interrupted):  # killed after the second day's file, before its progress
        await backfill(config, clock, tmp_path / "resumed", [Interrupt(2)], start=start)
    done = datetime.fromisoformat(json.loads((tmp_path / "resumed" / "progress.json").read_text())["done"])
    limited.reset_log()
    await backfill(config, clock, tmp_path / "resumed", start=start)
    assert done > start
    asked = [e.variables["from"] for e in limited.query_log if "from" in e.variables]
    # (the quantile window ending at `done` is stamped at `done`: the next day's file holds it)
    first = done - config.quantile_window
    assert asked and min(asked) == first.strftime("%Y-%m-%dT%H:%M:%SZ"), "finished days are not asked again"
    for name in sorted(p.name for p in files.files):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


async def test_the_rate_budget_is_kept(
    limited: Simulator, clock: ManualClock, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    limited.knobs.rate_limit = True
    limited.knobs.rate_limit_queries = 6
    config = make_config(rate_limit=5, state_dir=None)
    start = floor_minute(clock.now() - timedelta(hours=9))
    await backfill(config, clock, tmp_path, start=start, step="5m")
    graphql = [e for e in limited.query_log if e.endpoint == "graphql"]
    assert {e.outcome for e in graphql} == {"ok"} and len(graphql) > 10
    times = [e.time for e in graphql]
    assert all(sum(1 for t in times if a <= t < a + timedelta(minutes=5)) <= 5 for a in times)


async def test_live_counting_continues_from_the_backfill_and_a_live_state_is_never_overwritten(
    limited: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    tmp_path: Path,
) -> None:
    config = make_config(profile="lean")
    run, _ = await backfill(config, clock, tmp_path / "om", start=clock.now() - timedelta(hours=3))
    progress = run.progress
    assert progress is not None
    clock.advance(600)
    bridge = make_bridge(config, catalogue=catalogue())
    await bridge.start()
    await bridge.poll_once()
    ledger = bridge.accounts[progress.accounts[0]].ledgers[WORKERS]
    assert ledger.settled > progress.end  # continued from the backfill's end, not from the lookback
    want = exact_totals(
        limited.traffic,
        bridge.catalogue.datasets,
        bridge.accounts,
        progress.start,
        ledger.counted,
        clock.now(),
    )
    page = _page_values(bridge.page.page.body.decode())
    assert len(want) > 20
    assert {k: page.get(k) for k in want} == {k: float(v) for k, v in want.items()}

    limited.reset_log()
    with pytest.raises(BackfillError, match="already holds live counts"):
        await backfill(config, clock, tmp_path / "again", start=clock.now() - timedelta(hours=3))
    assert not [e for e in limited.query_log if e.endpoint == "graphql"], "refused before any query"


def _page_values(text: str) -> dict[Any, float]:
    from prometheus_client.parser import text_string_to_metric_families as parse

    out = {}
    for family in parse(text):
        for s in family.samples:
            if s.name.endswith("_total") and not s.name.startswith("otelbridge"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "3x", "--output", "o"], "--since"),
        (["--from", "2026-11-01T00:00:30Z", "--output", "o"], "--from: must be a whole minute"),
        (["--since", "1d", "--from", "2026-11-01T00:00Z", "--output", "o"], "--since"),
        ([], "--output"),
        (["--output", "o", "--label", "bad-name=x"], "--label"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    assert cli.main(["backfill", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and TOKEN not in err and len(err.strip().splitlines()) == 1
