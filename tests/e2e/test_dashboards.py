"""The generated Grafana dashboards, proven on real data: every panel and variable query of
dashboards/*.json runs against a real Prometheus that scraped otelbridge (polling the simulated
Cloudflare API), and against one fed by the same bridge through OTLP -> Collector -> remote write.
Every query returns data, and the requests and error-ratio panels equal the simulator's ground truth.

Grafana's variables are substituted as Grafana would: every variable ($account, $script, $zone)
by a regex matching every value, $__rate_interval and $__range by durations; the data source is
the server queried.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import REPO_ROOT, CollectorProcess, PrometheusServer
from test_bridge_pipeline import otlp_bridge, remote_write_collector, run_hour, served, truth, until_equal
from test_metric_names import bridge_exporting_nowhere

from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config
from otelbridge.simulator import Simulator
from otelbridge.windows import floor_minute
from tests.metrics_text import SeriesValues

pytestmark = pytest.mark.e2e
__all__ = ["remote_write_collector", "served"]  # fixtures used here

DASHBOARDS = sorted((REPO_ROOT / "dashboards").glob("*.json"))
MATCH_ALL = ".*"
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")
REQUESTS = "cloudflare_workers_requests_total"
ERRORS = "cloudflare_workers_errors_total"
SCRIPT_KEY = ("cloud_account_id", "faas_name")
# An hour of history on the first poll: every series exists before phase two starts, so
# increase() over [phase one, phase two] sees both ends of every series.
LONG_LOOKBACK = timedelta(minutes=60)


@dataclass(frozen=True)
class Query:
    where: str  # dashboard file and panel or variable
    expr: str  # as in the JSON, with Grafana's variables
    variable_label: str | None = None  # set for label_values() variable queries


def dashboard_queries(path: Path) -> list[Query]:
    board = json.loads(path.read_text(encoding="utf-8"))
    out = [
        Query(f"{path.name}: {panel['title']}", target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue  # the data source variable
        match = LABEL_VALUES.match(var["query"])
        assert match, f"{path.name}: variable {var['name']}: not label_values(): {var['query']}"
        out.append(Query(f"{path.name}: ${var['name']}", match.group(1), match.group(2)))
    return out


def substitute(expr: str, rate_interval: str, time_range: str) -> str:
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", time_range)
    return re.sub(r"\$\{?(?!__)(\w+)\}?", MATCH_ALL, expr)  # every dashboard variable: "All"


def api(prom: PrometheusServer, path: str, **params: str) -> Any:
    url = f"{prom.url}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def run(prom: PrometheusServer, q: Query, rate_interval: str, time_range: str, at: str | None = None) -> Any:
    expr = substitute(q.expr, rate_interval, time_range)
    if q.variable_label is not None:
        return api(prom, f"label/{q.variable_label}/values", **{"match[]": expr})
    return api(prom, "query", query=expr, **({"time": at} if at else {}))["result"]


def panel_expr(title: str) -> Query:
    for path in DASHBOARDS:
        for q in dashboard_queries(path):
            if q.where == f"{path.name}: {title}":
                return q
    raise KeyError(title)


def sample_times(prom: PrometheusServer, selector: str, phase_one: float) -> tuple[int, int]:
    """(ms of the last sample still holding the phase-one value, ms of the newest sample)."""
    result = api(prom, "query", query=f"{selector}[10m]")["result"]
    assert len(result) == 1, result
    values = [(round(float(t) * 1000), float(v)) for t, v in result[0]["values"]]
    before = [t for t, v in values if v == phase_one]
    assert before and values[-1][1] != phase_one, values
    return before[-1], values[-1][0]


def by_script(values: SeriesValues, name: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for (metric, labels), v in values.items():
        if metric == name:
            out[tuple(dict(labels)[k] for k in SCRIPT_KEY)] += v
    return out


def check_panels_against_truth(
    prom: PrometheusServer, selector: str, phase_one: float, one: SeriesValues, two: SeriesValues
) -> None:
    """Requests and error ratio over exactly the samples [phase one, phase two]: no extrapolation."""
    start_ms, end_ms = sample_times(prom, selector, phase_one)
    window, at = f"{end_ms - start_ms}ms", f"{end_ms / 1000:.3f}"
    delta = {k: two[k] - one.get(k, 0.0) for k in two}
    requests, errors = by_script(delta, REQUESTS), by_script(delta, ERRORS)

    total = run(prom, panel_expr("Requests"), window, window, at)
    assert [float(r["value"][1]) for r in total] == [sum(requests.values())]

    ratio = run(prom, panel_expr("Error ratio"), window, window, at)
    overall = sum(errors.values()) / sum(requests.values())
    assert float(ratio[0]["value"][1]) == pytest.approx(overall, rel=1e-12)

    per_script = {
        tuple(r["metric"][k] for k in SCRIPT_KEY): float(r["value"][1])
        for r in run(prom, panel_expr("Error ratio by script"), window, window, at)
    }
    assert set(per_script) == set(requests)
    for key, got in per_script.items():
        if requests[key] == 0:
            assert math.isnan(got), key  # no invocations: no ratio
        else:
            assert got == pytest.approx(errors.get(key, 0.0) / requests[key], rel=1e-12), key
    assert any(v > 0 for v in per_script.values() if not math.isnan(v)), "some script has errors"


def every_query_returns_data(prom: PrometheusServer) -> tuple[int, list[str]]:
    queries = [q for path in DASHBOARDS for q in dashboard_queries(path)]
    empty = [q.where for q in queries if not run(prom, q, rate_interval="2m", time_range="5m")]
    return len(queries), empty


async def prove_dashboards(bridge: Bridge, clock: ManualClock, sim: Simulator, prom: PrometheusServer) -> int:
    """Polls in two phases, then runs every dashboard query on `prom`; returns the query count."""
    start = floor_minute(clock.now() - bridge.config.lookback)
    await run_hour(bridge, clock, minutes=1)
    one = truth(sim, bridge, start, clock.now())
    requests_one = {k: v for k, v in one.items() if k[0] == REQUESTS}
    await until_equal(prom, REQUESTS, requests_one)

    for _ in range(4):  # phase two: four more minutes counted, one page and one export each
        clock.advance(60)
        await bridge.otlp_idle()  # the last export's result is on the next page
        await bridge.poll_once()
    two = truth(sim, bridge, start, clock.now())
    assert set(two) == set(one), "a series appeared in phase two: increase() could not see its start"
    await until_equal(prom, REQUESTS, {k: v for k, v in two.items() if k[0] == REQUESTS})

    busiest = max(requests_one, key=lambda k: two[k] - one[k])
    selector = REQUESTS + "{" + ",".join(f'{k}="{v}"' for k, v in busiest[1]) + "}"
    await asyncio.to_thread(check_panels_against_truth, prom, selector, one[busiest], one, two)
    # rate() needs two scrapes of a series; one that appeared with the last pages (the export
    # counter) may have one so far: give Prometheus a few more 1 s scrapes before judging.
    for _ in range(10):
        total, empty = await asyncio.to_thread(every_query_returns_data, prom)
        if not empty:
            break
        await asyncio.sleep(1)
    assert empty == [], f"{len(empty)} of {total} queries returned nothing: {empty}"
    print(f"{total} dashboard queries, all with data")
    return total


def with_long_lookback(make_config: Callable[..., Config]) -> Callable[..., Config]:
    return lambda **overrides: make_config(lookback=LONG_LOOKBACK, datasets=(), **overrides)  # zones too


async def test_dashboards_on_prometheus_scraping_otelbridge(
    prometheus_binary: str,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    served: Callable[[Bridge], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = bridge_exporting_nowhere(with_long_lookback(make_config), make_bridge, monkeypatch)
    scraped = PrometheusServer(prometheus_binary, scrape_targets=[f"127.0.0.1:{await served(bridge)}"])
    scraped.start()  # from the main thread: its death signal is tied to the thread that started it
    try:
        assert await prove_dashboards(bridge, clock, sim, scraped) >= 25
    finally:
        await asyncio.to_thread(scraped.stop)


async def test_dashboards_on_prometheus_fed_through_the_collector(
    prometheus: PrometheusServer,
    remote_write_collector: CollectorProcess,
    sim: Simulator,
    clock: ManualClock,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = with_long_lookback(make_config)
    bridge = otlp_bridge(config, make_bridge, remote_write_collector, "grpc", monkeypatch, "dashboards")
    assert await prove_dashboards(bridge, clock, sim, prometheus) >= 25
    # The alert rules select job="otelbridge": the job the Collector derives from service.name.
    assert await asyncio.to_thread(prometheus.query, 'otelbridge_up{job="otelbridge"}')
