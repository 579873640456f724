"""Secrets are masked in every log line, including exception traces."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.config import ConfigError, load
from otelbridge.logs import JsonFormatter, ScrubSecrets

TOKEN = "cftoken-abcdefghijklmnopqrstuvwxyz012345"


@contextmanager
def scrubbed(
    name: str, formatter: logging.Formatter | None = None
) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing to a string through the secret filter (and the formatter, if given)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if formatter is not None:
        handler.setFormatter(formatter)
    handler.addFilter(ScrubSecrets([TOKEN]))
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_secret_in_message_args_and_traceback_is_masked() -> None:
    with scrubbed("test.scrub") as (logger, stream):
        logger.error("header was Bearer %s", TOKEN)
        try:
            raise RuntimeError(f"request failed with Authorization: Bearer {TOKEN}")
        except RuntimeError:
            logger.exception("call failed")
    text = stream.getvalue()
    assert TOKEN not in text
    assert text.count("***") >= 2
    assert "RuntimeError" in text


def test_credentials_never_show_themselves() -> None:
    creds = Credentials(token=Secret(TOKEN))
    assert TOKEN not in repr(creds) and TOKEN not in str(creds)
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    legacy = Credentials(email="a@example.com", key=Secret("k" * 37))
    assert "k" * 37 not in repr(legacy)
    assert legacy.secrets() == ["k" * 37]


def test_json_lines_carry_time_level_logger_message_extras_and_no_secret() -> None:
    with scrubbed("test.json", JsonFormatter()) as (logger, stream):
        logger.warning("poll of %s failed: %s", "acct", f"Bearer {TOKEN}", extra={"account": "acct", "n": 3})
        logger.info("header %s", TOKEN, extra={"header": f"Bearer {TOKEN}"})
        try:
            raise RuntimeError(f"boom {TOKEN}\nsecond line")
        except RuntimeError:
            logger.exception("call failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, "one JSON object per line, even with a multi-line traceback"
    first, second, third = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "test.json"
    assert first["message"] == "poll of acct failed: Bearer ***"
    assert first["account"] == "acct" and first["n"] == 3
    assert first["time"].endswith("+00:00")
    assert second["header"] == "Bearer ***"
    assert "RuntimeError" in third["exception"] and "second line" in third["exception"]
    assert TOKEN not in stream.getvalue()


def test_log_format_is_a_checked_setting() -> None:
    assert load(environ={"OTELBRIDGE_LOG_FORMAT": "json"}).log_format == "json"
    assert load(environ={}).log_format == "text"
    with pytest.raises(ConfigError, match="OTELBRIDGE_LOG_FORMAT: expected text or json"):
        load(environ={"OTELBRIDGE_LOG_FORMAT": "xml"})
