"""The README stays true to the code: every setting documented, the two commands present."""

from __future__ import annotations

from pathlib import Path

from otelbridge.config import KEYS
from otelbridge.simulator import Knobs

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    for key, (_, variable) in KEYS.items():
        assert f"`{key}`" in README or f"`{key}`," in README, key
        assert f"`{variable}`" in README, variable


def test_the_two_commands_are_there_and_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "./scripts/demo.sh" in README and (root / "scripts" / "demo.sh").exists()
    assert "./scripts/test.sh" in README and (root / "scripts" / "test.sh").exists()
    assert "scripts/test.sh" in (root / ".ci" / "run").read_text()


def test_knobs_named_in_the_readme_exist() -> None:
    for name in ("ingestion_delay", "server_error_probability", "latency", "enforce_limits"):
        assert name in Knobs.names()
        assert f"`{name}`" in README
