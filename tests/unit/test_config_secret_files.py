"""The API token from a file: CLOUDFLARE_API_TOKEN_FILE (container secrets) and systemd credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otelbridge.config import ConfigError, load

TOKEN = "cf-file-token-0123456789abcdef"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_token_file_from_the_environment_is_read_and_stripped(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", f"{TOKEN}\n")
    config = load(None, {"CLOUDFLARE_API_TOKEN_FILE": str(token_file)})
    assert config.credentials.token is not None
    assert config.credentials.token.reveal() == TOKEN


def test_token_file_from_the_yaml_file(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", TOKEN)
    config_file = write(tmp_path / "otelbridge.yaml", f"api_token_file: {token_file}\n")
    config = load(config_file, {})
    assert config.credentials.token is not None and config.credentials.token.reveal() == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("", "is empty"),
        ("  \n", "is empty"),
        (b"\xff\xfe", "not readable"),
    ],
    ids=["missing", "empty", "blank", "binary"],
)
def test_a_bad_token_file_is_a_config_error_naming_the_variable(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    token_file = tmp_path / "token"
    if isinstance(content, bytes):
        token_file.write_bytes(content)
    elif content is not None:
        write(token_file, content)
    with pytest.raises(ConfigError, match=rf"^CLOUDFLARE_API_TOKEN_FILE: .*{message}"):
        load(None, {"CLOUDFLARE_API_TOKEN_FILE": str(token_file)})


def test_a_token_file_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CLOUDFLARE_API_TOKEN_FILE: cannot read"):
        load(None, {"CLOUDFLARE_API_TOKEN_FILE": str(tmp_path)})


def test_token_and_token_file_together_are_ambiguous(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", TOKEN)
    with pytest.raises(ConfigError, match="not both"):
        load(None, {"CLOUDFLARE_API_TOKEN": "other", "CLOUDFLARE_API_TOKEN_FILE": str(token_file)})


def test_systemd_credential_is_used_when_no_token_is_set(tmp_path: Path) -> None:
    write(tmp_path / "cloudflare-api-token", f"{TOKEN}\n")
    config = load(None, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.credentials.token is not None and config.credentials.token.reveal() == TOKEN


def test_an_explicit_token_beats_the_systemd_credential(tmp_path: Path) -> None:
    write(tmp_path / "cloudflare-api-token", TOKEN)
    config = load(None, {"CREDENTIALS_DIRECTORY": str(tmp_path), "CLOUDFLARE_API_TOKEN": "explicit"})
    assert config.credentials.token is not None and config.credentials.token.reveal() == "explicit"


def test_credentials_directory_without_the_token_credential_means_no_token(tmp_path: Path) -> None:
    config = load(None, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.credentials.token is None


def test_an_empty_systemd_credential_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path / "cloudflare-api-token", "\n")
    with pytest.raises(ConfigError, match=r"^credential cloudflare-api-token: .* is empty"):
        load(None, {"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_the_cli_exits_2_naming_the_key_and_never_prints_the_token(tmp_path: Path) -> None:
    """A file the process may not read: its name is printed, its contents never."""
    token_file = write(tmp_path / "token", TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "OTEL"))}
    env["CLOUDFLARE_API_TOKEN_FILE"] = str(tmp_path / "missing")
    missing = subprocess.run(
        [sys.executable, "-m", "otelbridge", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2
    assert "CLOUDFLARE_API_TOKEN_FILE" in missing.stderr and str(tmp_path / "missing") in missing.stderr

    env["CLOUDFLARE_API_TOKEN_FILE"] = str(token_file)
    env["CLOUDFLARE_API_TOKEN"] = "another"
    both = subprocess.run(
        [sys.executable, "-m", "otelbridge", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert both.returncode == 2 and "CLOUDFLARE_API_TOKEN_FILE" in both.stderr
    assert TOKEN not in both.stdout + both.stderr
