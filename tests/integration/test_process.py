"""otelbridge as users run it: separate processes, real clock, kill -9, and a token that never leaks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from otelbridge.catalogue import load as load_catalogue
from otelbridge.simulator import Traffic
from otelbridge.windows import floor_minute
from tests.datasets import WORKERS
from tests.metrics_text import api_requests, expected_counters, parse_prometheus

SECRET = "cfsecret-7Hq2Lz9WxV4mN8pR3tY6uB1cE5dA0fG"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting; last error: {last}")


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "otelbridge", *args], env=env, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.handle.close()
        return int(self.p.returncode)


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        [
            "simulate",
            "--port",
            str(port),
            "--token",
            SECRET,
            "--knob",
            "server_error_probability=0.15",
            "--knob",
            "malformed_probability=0.1",
            "--knob",
            "reset_probability=0.05",
        ],
        dict(os.environ),
        tmp_path / "simulator.log",
    )
    url = f"http://127.0.0.1:{port}/client/v4"
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    yield url
    proc.stop()


def bridge_env(api_url: str, state: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "CLOUDFLARE_"))}
    env.update(
        CLOUDFLARE_API_TOKEN=SECRET,
        OTELBRIDGE_API_URL=api_url,
        OTELBRIDGE_POLL_INTERVAL="1s",
        OTELBRIDGE_DELAY="0s",
        OTELBRIDGE_SETTLE="0s",
        OTELBRIDGE_LOOKBACK="5m",
        OTELBRIDGE_STATE_DIR=str(state),
        OTELBRIDGE_LOG_LEVEL="DEBUG",
        OTELBRIDGE_PROFILE="full",  # every counter by status, compared with the ground truth
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    return env


def consistent_read(port: int) -> tuple[dict[str, Any], str]:
    """/status and /metrics from the same poll: retry while a poll lands between the two reads."""
    for _ in range(50):
        before = json.loads(get(f"http://127.0.0.1:{port}/status"))
        body = get(f"http://127.0.0.1:{port}/metrics")
        after = json.loads(get(f"http://127.0.0.1:{port}/status"))
        accounts = before["accounts"]
        if (
            accounts
            and all(a["up"] for a in accounts.values())
            and before["accounts"] == after["accounts"]
            and before["api_requests"] == after["api_requests"]
            # the page is rendered after the poll: until then it shows the previous one
            and api_requests(body) == {k: float(v) for k, v in before["api_requests"].items()}
        ):
            return before, body
        time.sleep(0.1)
    raise AssertionError("never saw a quiet moment with every account up")


def test_kill_9_and_restart_keep_totals_exact_and_the_token_secret(
    simulator_process: str, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = bridge_env(simulator_process, state, port)
    first = Proc(["run"], env, tmp_path / "bridge.log")
    wait_for(lambda: json.loads(get(f"http://127.0.0.1:{port}/status"))["accounts"])
    time.sleep(3)
    first.kill9()
    assert (state / "state.json").exists()
    saved = json.loads((state / "state.json").read_text())
    start = min(datetime.fromisoformat(a[WORKERS]["counted"]) for a in saved["accounts"].values())
    start = floor_minute(start)

    first_log_size = (tmp_path / "bridge.log").stat().st_size
    second = Proc(["run"], env, tmp_path / "bridge.log")
    try:
        wait_for(lambda: json.loads(get(f"http://127.0.0.1:{port}/status"))["api_requests"].get("ok", 0) >= 3)
        # The second process resumed every account where the first one's last save left it.
        with (tmp_path / "bridge.log").open("rb") as f:
            f.seek(first_log_size)
            second_log = f.read().decode(errors="replace")
        for account, ledgers in saved["accounts"].items():
            counted = ledgers[WORKERS]["counted"]
            assert f"account {account}: resuming from saved state, counted up to {counted}" in second_log
        # Nothing saved starts afresh (a zone the first process had not saved yet may).
        fresh = [line for line in second_log.splitlines() if ": counting from " in line]
        for scopes in (saved["accounts"], saved.get("zones", {})):
            for tag, ledgers in scopes.items():
                for dataset in ledgers:
                    assert not [f for f in fresh if tag in f and f"({dataset}," in f], (tag, dataset)
        assert not [f for f in fresh if "account " in f.split(": counting from ")[0]], (
            "an account started afresh"
        )
        status, body = consistent_read(port)
        traffic = Traffic.default(seed=1)
        got = {k: v for k, v in parse_prometheus(body).items() if k[0].endswith("_total")}
        ends = {datetime.fromisoformat(a["counted"]) for a in status["accounts"].values()}
        assert len(ends) == 1
        end = ends.pop()
        lookback_start = floor_minute(_first_start(tmp_path / "bridge.log"))
        want = expected_counters(
            traffic, load_catalogue(), status["accounts"], lookback_start, end, as_of=end
        )
        assert got == want
        assert start >= lookback_start
        metrics_text = body
        status_text = json.dumps(status)
    finally:
        second.stop()

    check = subprocess.run(
        [sys.executable, "-m", "otelbridge", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    outputs = {
        "bridge log": (tmp_path / "bridge.log").read_text(errors="replace"),
        "metrics": metrics_text,
        "status": status_text,
        "state file": (state / "state.json").read_text(),
        "check output": check.stdout + check.stderr,
    }
    assert "DEBUG" in outputs["bridge log"], "the log was at its most verbose"
    assert "failed" in outputs["bridge log"] or "retry" in outputs["bridge log"], "faults were exercised"
    for channel, text in outputs.items():
        assert SECRET not in text, f"the API token leaked into the {channel}"
        assert SECRET[8:24] not in text, f"part of the API token leaked into the {channel}"


def _first_start(log: Path) -> datetime:
    """Where the first process began counting, as it logged it."""
    for line in log.read_text(errors="replace").splitlines():
        if ": counting from " in line:
            return datetime.fromisoformat(line.split(": counting from ")[1].split(" ")[0])
    raise AssertionError("no 'counting from' line in the log")


def test_demo_serves_metrics_within_seconds(tmp_path: Path) -> None:
    """The README's first command ends in `otelbridge demo`: it must serve Workers metrics quickly."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "CLOUDFLARE_"))}
    started = time.monotonic()
    demo = Proc(["demo", "--port", str(port)], env, tmp_path / "demo.log")
    try:
        body = wait_for(
            lambda: (
                "cloudflare_workers_requests_total{" in (text := get(f"http://127.0.0.1:{port}/metrics"))
                and text
            ),
            timeout=20,
        )
        elapsed = time.monotonic() - started
        families = parse_prometheus(body)
        assert len(families) > 100
        assert elapsed < 20
        # zone and developer-platform metrics out of the box
        for name in ("cloudflare_zone_requests_total", "cloudflare_r2_operations_total"):
            assert f"\n{name}{{" in body, f"{name} missing from the demo"
    finally:
        demo.stop()
    log = (tmp_path / "demo.log").read_text()
    assert f"metrics: http://127.0.0.1:{port}/metrics" in log
