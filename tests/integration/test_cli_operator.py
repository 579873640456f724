"""The command line as an operator meets it: a taken port fails at once, `check` prints the plan,
and the demo honours the standard OTEL_EXPORTER_* variables (flags still win)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelbridge.catalogue import load
from tests.integration.test_process import SECRET, Proc, bridge_env, free_port, get, wait_for


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "CLOUDFLARE_", "OTELBRIDGE_"))}


def otelbridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelbridge", *args], env=env, capture_output=True, text=True, timeout=90
    )


def test_a_taken_port_fails_at_once_before_cloudflare_is_contacted(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as api:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api.bind(("127.0.0.1", 0))
        api.listen()
        api.setblocking(False)
        port, api_port = taken.getsockname()[1], api.getsockname()[1]
        env = {**clean_env(), **bridge_env(f"http://127.0.0.1:{api_port}/client/v4", tmp_path, port)}
        env["OTELBRIDGE_LOG_LEVEL"] = "INFO"
        result = otelbridge("run", env=env)
        with pytest.raises(BlockingIOError):
            api.accept()  # nobody knocked: Cloudflare was not contacted
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"otelbridge: configuration error: prometheus_port: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ]


@pytest.fixture
def quiet_simulator(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(["simulate", "--port", str(port), "--token", SECRET], clean_env(), tmp_path / "sim.log")
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    yield f"http://127.0.0.1:{port}/client/v4"
    proc.stop()


def test_check_prints_the_plan_without_the_token(quiet_simulator: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**clean_env(), **bridge_env(quiet_simulator, tmp_path / "state", port)}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector.example:4318"
    result = otelbridge("check", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    plan = out[: out.index("\n{")]
    assert plan.startswith("plan:\n")
    for line in (
        f"  Cloudflare API: {quiet_simulator} (credential: token)",
        "  accounts:       every account the credential can see (discovered)",
        "  datasets:       "
        + ", ".join(d.dataset for d in load().select("full").enabled if d.scope == "account"),
        "  poll interval:  1s",
        "  counting:       a minute is counted once 0s old and final once 0s old; first start looks back 5m",
        f"  /metrics:       http://127.0.0.1:{port}/metrics",
        "  OTLP:           http://collector.example:4318/v1/metrics (http/protobuf)",
        f"  state dir:      {tmp_path / 'state'}",
    ):
        assert line in plan.splitlines(), f"{line!r} not in\n{plan}"
    assert SECRET not in out + result.stderr


class _Sink(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []  # noqa: RUF012 - one list shared by the server's handler instances

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def otlp_sink() -> Iterator[tuple[int, list[str]]]:
    """Accepts OTLP/HTTP exports and records their paths."""
    _Sink.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Sink.paths
    server.shutdown()
    server.server_close()


def test_demo_honours_the_standard_variables_and_flags_win(
    tmp_path: Path, otlp_sink: tuple[int, list[str]]
) -> None:
    sink_port, received = otlp_sink
    port, flag_port = free_port(), free_port()
    env = clean_env()
    env.update(
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
    )
    demo = Proc(["demo", "--poll-interval", "1s"], env, tmp_path / "demo.log")
    try:
        wait_for(lambda: "cloudflare_workers_requests_total{" in get(f"http://127.0.0.1:{port}/metrics"))
        wait_for(lambda: "/v1/metrics" in received)
    finally:
        demo.stop()
    flagged = Proc(["demo", "--port", str(flag_port)], env, tmp_path / "flagged.log")
    try:
        wait_for(lambda: "cloudflare_workers_requests_total{" in get(f"http://127.0.0.1:{flag_port}/metrics"))
        with pytest.raises(OSError):
            get(f"http://127.0.0.1:{port}/metrics")
    finally:
        flagged.stop()
    assert f"metrics: http://127.0.0.1:{port}/metrics" in (tmp_path / "demo.log").read_text()


def test_log_format_json_makes_every_line_a_json_object(tmp_path: Path) -> None:
    env = {**clean_env(), **bridge_env("http://127.0.0.1:9/client/v4", tmp_path, free_port())}
    env.update(OTELBRIDGE_LOG_FORMAT="json", OTELBRIDGE_LOG_LEVEL="INFO")
    result = otelbridge("check", env=env)  # nothing listens on port 9: discovery fails and is logged
    logged = [json.loads(line) for line in result.stderr.splitlines() if not line.startswith("otelbridge: ")]
    assert logged, result.stderr
    assert {"time", "level", "logger", "message"} <= set(logged[0])
    assert any("cannot connect to 127.0.0.1:9" in entry["message"] for entry in logged)
    assert SECRET not in result.stderr
