"""A kill -9 and a restart of a real `otelbridge run` continue the same OTLP series: the Collector
turns service.instance.id into the `instance` label, and the id is kept in the state directory.
Checked in Prometheus after remote write: one instance, no counter reset, exact totals."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from servers import COLLECTOR_CONFIG_DIR, CollectorProcess, PrometheusServer
from test_bridge_pipeline import as_series

from otelbridge.catalogue import load as load_catalogue
from otelbridge.simulator import Traffic
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.integration.test_process import SECRET, Proc, _first_start, bridge_env, free_port, get, wait_for
from tests.metrics_text import expected_counters

pytestmark = pytest.mark.e2e

TOTALS = '{__name__=~"cloudflare_workers_.*_total", job="otelbridge"}'


@pytest.fixture
def collector(collector_binary: Path, prometheus: PrometheusServer) -> Iterator[CollectorProcess]:
    config = (COLLECTOR_CONFIG_DIR / "otlp-to-remote-write.yaml").read_text()
    with CollectorProcess(collector_binary, config, env={"PRW_ENDPOINT": prometheus.remote_write_url}) as c:
        yield c


@pytest.fixture
def simulator_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(["simulate", "--port", str(port), "--token", SECRET], dict(os.environ), tmp_path / "sim.log")
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    yield f"http://127.0.0.1:{port}/client/v4"
    proc.stop()


def exports(port: int) -> int:
    return int(json.loads(get(f"http://127.0.0.1:{port}/status"))["otlp_exports"].get("success", 0))


def test_instance_label_and_totals_survive_kill_9(
    simulator_url: str, collector: CollectorProcess, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = bridge_env(simulator_url, state, port)
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="5",
    )
    log = tmp_path / "bridge.log"
    first = Proc(["run"], env, log)
    try:
        wait_for(lambda: exports(port) >= 3)
        instance = (state / "instance-id").read_text().strip()
        prometheus.wait_for('cloudflare_workers_requests_total{job="otelbridge"}', timeout=30)
    finally:
        first.kill9()

    second = Proc(["run"], env, log)
    try:
        wait_for(lambda: exports(port) >= 3)
    finally:
        assert second.stop() == 0  # SIGTERM: the last poll's export finishes before exit
    assert (state / "instance-id").read_text().strip() == instance

    saved = json.loads((state / "state.json").read_text())
    ends = {datetime.fromisoformat(a[WORKERS]["counted"]) for a in saved["accounts"].values()}
    assert len(ends) == 1
    end = ends.pop()
    start = floor_minute(_first_start(log))
    want = expected_counters(
        Traffic.default(seed=1), load_catalogue(), saved["accounts"], start, end, as_of=end
    )
    assert want

    def settled() -> bool:
        return as_series(prometheus.query(TOTALS)) == want

    deadline = time.monotonic() + 45
    while not settled():
        assert time.monotonic() < deadline, "Prometheus never showed the final totals"
        time.sleep(0.5)
    window = "[1h]"
    instances = prometheus.query(f"count by (instance) (last_over_time({TOTALS}{window}))")
    assert [i["metric"]["instance"] for i in instances] == [instance], "one instance across the restart"
    for name in sorted({name for name, _ in want}):
        resets = prometheus.query(f'max(resets({name}{{job="otelbridge"}}{window}))')
        assert float(resets[0]["value"][1]) == 0, f"{name} restarted from zero instead of continuing"
    series = prometheus.query(f"count({TOTALS})")
    assert float(series[0]["value"][1]) == len(want)
