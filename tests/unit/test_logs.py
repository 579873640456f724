"""Secrets are masked in every log line, including exception traces."""

from __future__ import annotations

import io
import logging

from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.logs import ScrubSecrets

TOKEN = "cftoken-abcdefghijklmnopqrstuvwxyz012345"


def test_secret_in_message_args_and_traceback_is_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubSecrets([TOKEN]))
    logger = logging.getLogger("test.scrub")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("header was Bearer %s", TOKEN)
        try:
            raise RuntimeError(f"request failed with Authorization: Bearer {TOKEN}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
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
    import json

    from otelbridge.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ScrubSecrets([TOKEN]))
    logger = logging.getLogger("test.json")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("poll of %s failed: %s", "acct", f"Bearer {TOKEN}", extra={"account": "acct", "n": 3})
        logger.info("header %s", TOKEN, extra={"header": f"Bearer {TOKEN}"})
        try:
            raise RuntimeError(f"boom {TOKEN}\nsecond line")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
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
    import pytest

    from otelbridge.config import ConfigError, load

    assert load(environ={"OTELBRIDGE_LOG_FORMAT": "json"}).log_format == "json"
    assert load(environ={}).log_format == "text"
    with pytest.raises(ConfigError, match="OTELBRIDGE_LOG_FORMAT: expected text or json"):
        load(environ={"OTELBRIDGE_LOG_FORMAT": "xml"})
