"""Real Prometheus and OpenTelemetry Collector processes for end-to-end tests.

Every server binds to 127.0.0.1 on a free port, runs in its own process group (so stopping it
also ends anything it started) and is stopped by its context manager, or at interpreter exit as a
last resort, so that no test leaves a server running.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG_DIR = REPO_ROOT / "collector-config"
LOG_TAIL_LINES = 40
# Printed by every Collector once all pipelines have started.
COLLECTOR_READY_LINE = "Everything is ready"

Result = list[dict[str, Any]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _die_with_parent(argv: Sequence[str]) -> list[str]:
    """Prefix argv so Linux ends the child if the test process dies, even by SIGKILL.

    setpriv sets the death signal after fork, in C: Python code between fork and exec
    (preexec_fn) deadlocks once gRPC's fork handlers or other threads are about.
    """
    setpriv = shutil.which("setpriv")
    if sys.platform != "linux" or setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def value_is(expected: float) -> Callable[[Result], bool]:
    """A `wait_for` predicate: exactly one series, with value `expected`."""

    def check(result: Result) -> bool:
        return len(result) == 1 and float(result[0]["value"][1]) == expected

    return check


class ServerError(RuntimeError):
    """A server did not start or did not answer; the message carries its log tail."""


class _Process:
    """A child process in its own session with its output in a log file."""

    _live: ClassVar[set[_Process]] = set()

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        if self.running:
            raise ServerError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            # A new session makes the child a process-group leader: killpg then reaches any
            # grandchildren, and Ctrl-C in the terminal does not race our own shutdown.
            self.proc = subprocess.Popen(
                _die_with_parent(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=self.workdir,
                start_new_session=True,
            )
        _Process._live.add(self)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        _Process._live.discard(self)
        if proc is None:
            return
        self._signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(proc, signal.SIGKILL)
            proc.wait(5)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def fail(self, message: str) -> ServerError:
        return ServerError(
            f"{self.name}: {message}\n--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}"
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise self.fail(f"exited (code {code}) before {what}")
            if ready():
                return
            time.sleep(0.05)
        raise self.fail(f"not {what} after {timeout:.0f} s")

    @classmethod
    def terminate_all(cls) -> None:
        for process in list(cls._live):
            process.terminate(timeout=5)


atexit.register(_Process.terminate_all)


class _Server:
    """Context-manager plumbing shared by the servers."""

    _process: _Process

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def find_binary(name: str) -> str | None:
    """`name` on PATH, else Debian's /usr/bin/`name` (PATH may be trimmed in CI or an IDE)."""
    debian = f"/usr/bin/{name}"
    return shutil.which(name) or (debian if os.access(debian, os.X_OK) else None)


class PrometheusServer(_Server):
    """A throw-away Prometheus with its remote-write receiver on, scraping `scrape_targets`."""

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        start_timeout: float = 30.0,
        out_of_order_window: str | None = None,
    ) -> None:
        self.binary = str(binary or find_binary("prometheus") or "prometheus")
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.out_of_order_window = out_of_order_window  # e.g. "3d": accept historic samples
        self.start_timeout = start_timeout
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="otelbridge-prometheus-")
        self.workdir = Path(self._tmp.name)
        self._process = _Process("prometheus", self.workdir)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def config_text(self) -> str:
        # JSON is valid YAML and needs no quoting rules of its own.
        jobs = [
            {"job_name": f"target{i}", "static_configs": [{"targets": [target]}]}
            for i, target in enumerate(self.scrape_targets)
        ]
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": jobs,
        }
        if self.out_of_order_window:
            config["storage"] = {"tsdb": {"out_of_order_time_window": self.out_of_order_window}}
        return json.dumps(config, indent=2)

    @property
    def data_dir(self) -> Path:
        """The TSDB directory: blocks put here before start() are loaded (e.g. from promtool)."""
        return self.workdir / "data"

    def start(self) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config_text())
        argv = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self.port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        self._process.spawn(argv)
        self._process.wait_until(self._ready, self.start_timeout, "ready")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        self._process.terminate()
        self._tmp.cleanup()

    def query(self, promql: str, at: float | None = None) -> Result:
        """Instant query (at `at`, epoch seconds, else now): the `result` list of the HTTP API
        (`metric` labels and `value` [ts, "v"])."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            raise self._process.fail(f"query {promql!r} failed: {err.code} {err.read()!r}") from err
        if body.get("status") != "success":
            raise self._process.fail(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for(
        self, promql: str, predicate: Callable[[Result], bool] = bool, timeout: float = 20.0
    ) -> Result:
        """Polls `promql` until `predicate(result)` holds; fails with the last result otherwise."""
        deadline = time.monotonic() + timeout
        result = self.query(promql)
        while not predicate(result):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{promql!r} did not match within {timeout:.0f} s; last result: {result}"
                )
            time.sleep(0.2)
            result = self.query(promql)
        return result

    def reload(self) -> None:
        """Re-reads the config (after changing `scrape_targets`), via the lifecycle API."""
        (self.workdir / "prometheus.yml").write_text(self.config_text())
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


class CollectorProcess(_Server):
    """An OpenTelemetry Collector running `config` (YAML text).

    Free ports are handed to the config through the environment, the way the shipped configs take
    their listen addresses: OTLP_GRPC_ENDPOINT and OTLP_HTTP_ENDPOINT point at `grpc_port` and
    `http_port`. `env` adds to (and may override) those and the test's own environment. The
    Collector's own telemetry is switched off so that it does not claim port 8888.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str],
        config: str,
        *,
        env: Mapping[str, str] | None = None,
        wait_ports: Sequence[int] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.binary = str(binary)
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "OTLP_GRPC_ENDPOINT": f"{HOST}:{self.grpc_port}",
            "OTLP_HTTP_ENDPOINT": f"{HOST}:{self.http_port}",
            **(env or {}),
        }
        # By default wait for both OTLP ports; a config without the OTLP receiver passes [].
        self.wait_ports = list(wait_ports) if wait_ports is not None else [self.grpc_port, self.http_port]
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="otelbridge-collector-")
        self.workdir = Path(self._tmp.name)
        self.config_path = self.workdir / "config.yaml"
        self.config_path.write_text(config)
        self._process = _Process("collector", self.workdir)

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{HOST}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def argv(self) -> list[str]:
        return [
            self.binary,
            f"--config={self.config_path}",
            "--set=service::telemetry::metrics::level=none",
        ]

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process.spawn(self.argv(), self.env)
        self._process.wait_until(lambda: self._ready(offset), self.start_timeout, "ready")

    def _ready(self, log_offset: int) -> bool:
        # Only this run's part of the log counts: a restart appends to the same file.
        with self.log_path.open("rb") as log:
            log.seek(log_offset)
            started = COLLECTOR_READY_LINE.encode() in log.read()
        return started and all(port_open(port) for port in self.wait_ports)

    def stop(self) -> None:
        self._process.terminate()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is not None:
            print(f"--- last lines of the Collector log ---\n{log_tail(self.log_path)}")
        self._tmp.cleanup()
