"""Bad configuration: one readable line naming the key, exit 2, and never the token."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from otelbridge.cli import main
from otelbridge.config import ConfigError, load, parse_duration

TOKEN = "cfut_Q2xvdWRmbGFyZVRva2VuU2VjcmV0"
GOOD_ENV = {"CLOUDFLARE_API_TOKEN": TOKEN}

# (YAML text, environment, the key the message must name)
BAD: dict[str, tuple[str, dict[str, str], str]] = {
    "malformed yaml": ("poll_interval: [60s\n", GOOD_ENV, "not valid YAML at line"),
    "top level is a list": ("- 1\n- 2\n", GOOD_ENV, "expected a mapping"),
    "unknown key": ("poll_intervall: 60s\n", GOOD_ENV, "poll_intervall: unknown configuration key"),
    "duration with a bad unit": ("delay: 5x\n", GOOD_ENV, "delay: expected a duration"),
    "negative duration": ("lookback: -5m\n", GOOD_ENV, "lookback: expected a duration"),
    "duration as a list": ("settle: [1, 2]\n", GOOD_ENV, "settle: expected a duration"),
    "duration as a boolean": ("poll_interval: true\n", GOOD_ENV, "poll_interval: expected a duration"),
    "env duration garbage": (
        "",
        {**GOOD_ENV, "OTELBRIDGE_POLL_INTERVAL": "soon"},
        "OTELBRIDGE_POLL_INTERVAL",
    ),
    "settle shorter than delay": ("delay: 10m\nsettle: 2m\n", GOOD_ENV, "settle: must be at least delay"),
    "poll interval too short": ("poll_interval: 10ms\n", GOOD_ENV, "poll_interval: must be at least 1s"),
    "quantile window not whole minutes": ("quantile_window: 90s\n", GOOD_ENV, "quantile_window"),
    "quantile not offered": ("quantiles: ['0.5', '0.42']\n", GOOD_ENV, "quantiles: '0.42' is not offered"),
    "account tag malformed": ("accounts: [abc]\n", GOOD_ENV, "accounts: 'abc' is not an account tag"),
    "accounts as a mapping": ("accounts: {a: 1}\n", GOOD_ENV, "accounts: expected a list"),
    "port out of range": ("prometheus_port: 70000\n", GOOD_ENV, "prometheus_port: expected a whole number"),
    "port as text": (
        "",
        {**GOOD_ENV, "OTEL_EXPORTER_PROMETHEUS_PORT": "http"},
        "OTEL_EXPORTER_PROMETHEUS_PORT",
    ),
    "max series zero": ("max_series: 0\n", GOOD_ENV, "max_series: expected a whole number"),
    "api url not a url": ("api_url: api.cloudflare.com\n", GOOD_ENV, "api_url: expected an http(s) URL"),
    "log level unknown": ("log_level: LOUD\n", GOOD_ENV, "log_level"),
    "empty token": ("", {"CLOUDFLARE_API_TOKEN": " "}, "api_token: no Cloudflare credentials"),
    "empty token in file": ("api_token: ''\n", {}, "api_token: is empty"),
    "no credentials": ("", {}, "api_token: no Cloudflare credentials"),
    "legacy key without email": (
        "",
        {"CLOUDFLARE_API_KEY": "k" * 37},
        "api_key: the legacy credential needs both",
    ),
    "boolean flag garbage": ("account_based_rate_limit: maybe\n", GOOD_ENV, "account_based_rate_limit"),
    "token of the wrong type": ("api_token: [a, b]\n", {}, "api_token: expected text"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line_naming_the_key(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, env, needle = BAD[case]
    for name in list(__import__("os").environ):
        if name.startswith(("CLOUDFLARE_", "OTELBRIDGE_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "otelbridge.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("otelbridge: configuration error: ")
    assert needle in lines[0]
    assert TOKEN not in out + err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_environment_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("poll_interval: 5m\ndelay: 2m\nsettle: 2m\n", encoding="utf-8")
    config = load(path, {"OTELBRIDGE_POLL_INTERVAL": "30s", "CLOUDFLARE_API_TOKEN": TOKEN})
    assert config.poll_interval == timedelta(seconds=30)
    assert config.delay == timedelta(minutes=2)
    assert config.credentials.token is not None and config.credentials.token.reveal() == TOKEN
    assert TOKEN not in repr(config)


def test_defaults_are_sane() -> None:
    config = load(None, {})
    assert config.prometheus_host == "localhost" and config.prometheus_port == 9464
    assert config.delay <= config.settle
    assert config.state_dir is not None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60), ("90s", 90), ("5m", 300), ("1.5h", 5400), ("250ms", 0.25), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration("k", text).total_seconds() == seconds


def test_duration_error_names_key() -> None:
    with pytest.raises(ConfigError, match=r"^delay: "):
        parse_duration("delay", "1 minute")
