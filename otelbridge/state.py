"""Restart without loss: the ledgers are saved after every cycle and read back on start.

Files are written atomically (temporary file, fsync, rename), so a kill -9 leaves either the old
or the new state. A file that cannot be read, or that belongs to another API endpoint or another
version of the catalogue, is moved aside with a clear log line and counting starts fresh.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbridge.ledger import AccountLedger

log = logging.getLogger(__name__)
FORMAT = 1


class StateStore:
    def __init__(self, directory: Path, api_url: str) -> None:
        self.directory = directory
        self.api_url = api_url
        self.path = directory / "state.json"

    def save(self, ledgers: Mapping[str, AccountLedger]) -> None:
        document = {
            "format": FORMAT,
            "api_url": self.api_url,
            "saved_at": time.time(),
            "accounts": {account: ledger.to_json() for account, ledger in ledgers.items()},
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp.{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(document, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self, fields: tuple[str, ...]) -> dict[str, AccountLedger]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return self._parse(document, fields)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"state.json.bad-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "state file %s is unusable (%s); moved it to %s and starting fresh", self.path, exc, aside
            )
            return {}

    def _parse(self, document: Any, fields: tuple[str, ...]) -> dict[str, AccountLedger]:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not an otelbridge state file of a known format")
        if document.get("api_url") != self.api_url:
            raise ValueError(f"it belongs to API {document.get('api_url')!r}, not {self.api_url!r}")
        accounts = document["accounts"]
        if not isinstance(accounts, dict):
            raise ValueError("accounts is not a mapping")
        return {str(a): AccountLedger.from_json(data, fields) for a, data in accounts.items()}
