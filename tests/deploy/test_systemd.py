"""deploy/systemd/otelbridge.service: valid, hardened (exposure <= 2.0), and its credential works.

systemd itself cannot run here, so the unit is checked offline with systemd-analyze, and the
process it starts is run the way systemd would: ExecStart's arguments, the unit's Environment=,
and the token only as $CREDENTIALS_DIRECTORY/cloudflare-api-token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, SIM_TOKEN, all_accounts_up, tool, wait_serving
from tests.integration.test_process import Proc, free_port, get, wait_for

UNIT = ROOT / "deploy" / "systemd" / "otelbridge.service"
MAX_EXPOSURE = 2.0
INSTALLED_BINARY = "/opt/otelbridge/bin/otelbridge"


def service_settings() -> list[tuple[str, str]]:
    settings, section = [], ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.append((key, value))
    return settings


def setting(key: str) -> str:
    values = [v for k, v in service_settings() if k == key]
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return tool("systemd-analyze", "install Debian's systemd package")


@pytest.fixture
def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this checkout's otelbridge (verify needs it to exist)."""
    binary = Path(sys.executable).parent / "otelbridge"
    assert binary.exists(), binary
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BINARY} " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, str(binary)))
    return copy


def test_unit_verifies_cleanly(systemd_analyze: str, local_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze, "verify", str(local_unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if local_unit.name in line]
    assert not complaints, "\n".join(complaints)


def exposure(systemd_analyze: str, unit: Path) -> float:
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure figure in:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return float(match.group(1))


def test_unit_exposure_is_at_most_2(systemd_analyze: str, local_unit: Path) -> None:
    figure = exposure(systemd_analyze, local_unit)
    print(f"systemd-analyze security exposure: {figure}")
    assert figure <= MAX_EXPOSURE


def test_unit_runs_unprivileged_with_state_and_credential(local_unit: Path) -> None:
    assert setting("DynamicUser") == "yes"
    assert setting("StateDirectory") == "otelbridge"
    assert setting("Environment") == "OTELBRIDGE_STATE_DIR=%S/otelbridge"
    assert setting("EnvironmentFile") == "-/etc/otelbridge/otelbridge.env"
    assert setting("LoadCredential") == "cloudflare-api-token:/etc/otelbridge/token"
    assert setting("RestartPreventExitStatus") == "2", "a config error must not crash-loop"
    assert not any(k == "Environment" and "CLOUDFLARE_API_TOKEN" in v for k, v in service_settings())


def test_process_authenticates_with_the_systemd_credential_only(simulator_url: str, tmp_path: Path) -> None:
    """ExecStart as systemd would run it: the unit's environment, the token as a credential file."""
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    credential, _ = setting("LoadCredential").split(":", 1)
    (credentials / credential).write_text(SIM_TOKEN)
    state = tmp_path / "otelbridge"  # %S/otelbridge with %S, systemd's state root, at tmp_path
    port = free_port()
    variable, _, value = setting("Environment").partition("=")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "CLOUDFLARE_"))}
    env.update(
        {variable: value.replace("%S", str(tmp_path))},
        CREDENTIALS_DIRECTORY=str(credentials),
        OTELBRIDGE_API_URL=simulator_url,
        OTELBRIDGE_POLL_INTERVAL="1s",
        OTELBRIDGE_DELAY="0s",
        OTELBRIDGE_SETTLE="0s",
        OTELBRIDGE_LOOKBACK="5m",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    args = setting("ExecStart").split()[1:]
    proc = Proc(args, env, tmp_path / "bridge.log")
    try:
        wait_serving(proc.p, proc.log, lambda: all_accounts_up(f"http://127.0.0.1:{port}/status"), 60)
        # The page is rendered once per poll, just after /status changes: wait for it too.
        wait_for(lambda: "cloudflare_workers_requests_total{" in get(f"http://127.0.0.1:{port}/metrics"), 30)
        wait_for(lambda: (state / "state.json").exists(), 30)
    finally:
        assert proc.stop() == 0
    assert SIM_TOKEN not in (tmp_path / "bridge.log").read_text(errors="replace")
