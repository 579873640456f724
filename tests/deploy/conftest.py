"""Fixtures for the deployment kit: the tools it needs, a simulated API process, an OTLP sink.

The container image, helm and the system tools are built or installed by the scripts in scripts/
(which cache them under ~/.cache/otelbridge/). A missing tool skips its tests with what to do,
except under OTELBRIDGE_REQUIRE_E2E=1 (set by CI), where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.test_process import Proc, free_port, get, wait_for
from tests.require import missing

ROOT = Path(__file__).resolve().parents[2]
SIM_TOKEN = "cfdeploy-Zq81mVt3Ks0Lw5Xn2Hd7Rb4"


def run_build_script(name: str, env_variable: str) -> str:
    """$env_variable if set, else the last stdout line of scripts/<name> (which caches its work)."""
    given = os.environ.get(env_variable)
    if given:
        return given
    script = ROOT / "scripts" / name
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        missing(f"scripts/{name} failed (set {env_variable} to skip it):\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def all_accounts_up(status_url: str) -> bool:
    accounts = json.loads(get(status_url))["accounts"]
    return bool(accounts) and all(a["up"] for a in accounts.values())


def wait_serving(
    process: subprocess.Popen[bytes], log: Path, check: Callable[[], bool], timeout: float
) -> None:
    """Wait for check() to hold, failing at once (with the log) if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"otelbridge exited with status {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.2)
    raise AssertionError(f"not serving after {timeout} s:\n{log.read_text(errors='replace')[-2000:]}")


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        missing(f"{what} needs root (CI runs as root)")


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`otelbridge simulate` as its own process on 127.0.0.1, accepting SIM_TOKEN."""
    port = free_port()
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    proc = Proc(["simulate", "--port", str(port), "--token", SIM_TOKEN], dict(os.environ), log)
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    yield f"http://127.0.0.1:{port}/client/v4"
    proc.stop()


class OtlpSink(ThreadingHTTPServer):
    """Records the paths and sizes of OTLP/HTTP export requests."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []
        super().__init__(("127.0.0.1", 0), _OtlpHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OtlpHandler(BaseHTTPRequestHandler):
    server: OtlpSink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((self.path, len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    yield sink
    sink.shutdown()
    sink.server_close()


def tool(name: str, install_hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found: {install_hint}")
    return found
