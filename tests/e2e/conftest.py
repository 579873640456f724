"""Fixtures that find the Prometheus and Collector binaries the end-to-end tests run.

A missing binary skips the test with what to install, except under OTELBRIDGE_REQUIRE_E2E=1
(set by CI), where it fails: a CI run must never pass by skipping its end-to-end tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import servers
from servers import PrometheusServer

from tests.require import missing

COLLECTOR_BINARY_NAME = "otelcol-otelbridge"


def find_collector() -> Path | None:
    """$OTELBRIDGE_COLLECTOR, else the newest build cached by scripts/build-collector.sh."""
    configured = os.environ.get("OTELBRIDGE_COLLECTOR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("OTELBRIDGE_CACHE", Path.home() / ".cache" / "otelbridge"))
    builds = [p for p in cache.glob(f"collector-*/{COLLECTOR_BINARY_NAME}") if os.access(p, os.X_OK)]
    return max(builds, key=lambda p: p.stat().st_mtime) if builds else None


def debian_tool(name: str) -> str:
    binary = servers.find_binary(name)
    if binary is None:
        missing(f"{name} not found: install Debian's `prometheus` package (apt-get install prometheus)")
    return binary


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return debian_tool("prometheus")


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    return debian_tool("promtool")


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    binary = find_collector()
    if binary is None or not os.access(binary, os.X_OK):
        where = binary or "~/.cache/otelbridge/collector-*/"
        missing(
            f"OpenTelemetry Collector not found at {where}: run scripts/build-collector.sh "
            "(needs Go) and/or set OTELBRIDGE_COLLECTOR to the binary"
        )
    return binary


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str) -> Iterator[PrometheusServer]:
    """One Prometheus per test module; tests keep apart by giving their series distinct labels."""
    with PrometheusServer(prometheus_binary) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    import browser

    binary = browser.ensure_chromium()
    if binary is None:
        missing("chromium not found: install Debian's `chromium` package (apt-get install chromium)")
    return binary
