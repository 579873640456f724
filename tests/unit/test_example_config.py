"""otelbridge.example.yaml stays in step with the configuration: it loads through the real loader,
names every key with its variable, and each commented example is itself a valid value."""

from __future__ import annotations

import re
from pathlib import Path

from otelbridge.config import KEYS, Config, load

EXAMPLE = Path(__file__).resolve().parents[2] / "otelbridge.example.yaml"
KEY_LINE = re.compile(r"^#? ?(\w+): .*# (\w+|YAML only)$")


def test_example_names_every_key_with_its_variable() -> None:
    documented = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = KEY_LINE.match(line)
        if match:
            documented[match.group(1)] = "" if match.group(2) == "YAML only" else match.group(2)
    assert documented == {key: variable for key, (_, variable) in KEYS.items()}


def test_example_loads_as_given_and_with_every_example_uncommented(tmp_path: Path) -> None:
    assert load(EXAMPLE, environ={}) == Config()  # the active lines are the defaults
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    uncommented = "\n".join(
        line[2:] if KEY_LINE.match(line) and line.startswith("# ") else line for line in lines
    )
    every = tmp_path / "every.yaml"
    every.write_text(uncommented, encoding="utf-8")
    config = load(every, environ={})
    assert config.accounts and config.quantiles and config.otlp_endpoint and config.web_config_file
    assert config.metrics
    assert config.credentials.token is not None
