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
