"""Every shipped Collector config passes `otelcol validate`, prometheus.yml passes promtool."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from servers import COLLECTOR_CONFIG_DIR

pytestmark = pytest.mark.e2e

BUILDER_MANIFEST = "builder-manifest.yaml"
# Example values for every variable a shipped config needs without a default. A config that adds a
# required variable must add it here too (and to collector-config/README.md).
EXAMPLE_ENV = {
    "PRW_ENDPOINT": "https://mimir.example.com/api/v1/push",
}
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-)?")


def collector_configs() -> list[Path]:
    return sorted(p for p in COLLECTOR_CONFIG_DIR.glob("*.yaml") if p.name != BUILDER_MANIFEST)


def uncommented(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_configs_are_found() -> None:
    names = {p.name for p in collector_configs()}
    assert {"otlp-to-remote-write.yaml", "scrape-otelbridge.yaml"} <= names


@pytest.mark.parametrize("config", collector_configs(), ids=lambda p: p.name)
def test_collector_validates(collector_binary: Path, config: Path) -> None:
    references = ENV_REFERENCE.findall(uncommented(config.read_text()))
    required = {name for name, default in references if not default}
    assert required <= EXAMPLE_ENV.keys(), f"give {required - EXAMPLE_ENV.keys()} an example value"
    # Unset every referenced variable first: one set in the developer's shell must not hide a default.
    referenced = {name for name, _ in references}
    env = {k: v for k, v in os.environ.items() if k not in referenced} | EXAMPLE_ENV
    result = run([str(collector_binary), "validate", f"--config={config}"], env)
    assert result.returncode == 0, f"validate {config.name} failed:\n{result.stdout}{result.stderr}"


def test_prometheus_config_passes_promtool(promtool_binary: str) -> None:
    config = COLLECTOR_CONFIG_DIR / "prometheus.yml"
    result = run([promtool_binary, "check", "config", str(config)])
    assert result.returncode == 0, f"promtool check config failed:\n{result.stdout}{result.stderr}"
