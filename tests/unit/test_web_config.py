"""A bcrypt hash in the web config without the bcrypt package stops the start with one line naming
the key (exit 2), instead of every scrape failing with 401."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otelbridge import web_config
from otelbridge.config import ConfigError

BCRYPT_HASH = "$2y$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
NO_BCRYPT = "import sys; sys.modules['bcrypt'] = None"  # any `import bcrypt` now raises ImportError


def write(tmp_path: Path) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: '{BCRYPT_HASH}'\n")
    return path


def test_bcrypt_hash_without_the_package_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    with pytest.raises(ConfigError, match=r"basic_auth_users\.prometheus is a bcrypt hash"):
        web_config.load(write(tmp_path))


def test_otelbridge_run_exits_2_naming_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "CLOUDFLARE_"))}
    env.update(
        CLOUDFLARE_API_TOKEN="unused-token",
        OTELBRIDGE_API_URL="http://127.0.0.1:1/client/v4",
        OTELBRIDGE_STATE_DIR="off",
        OTELBRIDGE_WEB_CONFIG_FILE=str(write(tmp_path)),
        OTEL_EXPORTER_PROMETHEUS_PORT="0",
    )
    code = f"{NO_BCRYPT}; from otelbridge.cli import main; sys.exit(main(['run']))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "basic_auth_users.prometheus" in lines[0] and "bcrypt" in lines[0], lines
