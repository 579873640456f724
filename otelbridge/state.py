"""Restart without loss: the ledgers are saved after every cycle and read back on start.

Files are written atomically (temporary file, fsync, rename, fsync of the directory), so a kill -9
or a power cut leaves either the old or the new state. A file that cannot be read, or that belongs
to another API endpoint or another version of the catalogue, or that holds numbers or times no
ledger can (NaN, infinities, times without a timezone), is moved aside with a clear log line and
counting starts fresh.

A save that fails (directory not writable, disk full) does not stop anything: counting goes on in
memory, the failure is logged when it starts and when it heals, counted, and retried every cycle.

The directory also keeps the process's `service.instance.id`, so that OTLP series (whose
`instance` label comes from it) carry on across restarts instead of starting new ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from otelbridge.ledger import Ledger

log = logging.getLogger(__name__)
# 2: ledgers by account and dataset (`accounts`), by zone and dataset (`zones`, optional), and each
# dataset's counter key (`keys`, optional); 1: one ledger per account, of FORMAT_1_DATASET
FORMAT = 2
FORMAT_1_DATASET = "workersInvocationsAdaptive"  # the only dataset counted when format 1 was written
Ledgers = dict[str, dict[str, Ledger]]  # account (or zone) tag -> dataset -> ledger
Shapes = Mapping[str, tuple[tuple[str, ...], int]]  # dataset -> (counter fields, key width)
INSTANCE_FILE = "instance-id"
MAX_INSTANCE_ID = 128


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Temporary file, fsync, rename over `path`, fsync the directory; no temporary file survives.
    `data` is the content, or writes it (for files too large to hold in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The rename is durable only once the directory entry is on disk.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a count")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


@dataclass
class SaveHealth:
    """How saving goes: what /status, otelbridge.state.up and otelbridge.state.save.failures show."""

    ok: bool = True
    failures: int = 0  # failed saves since start
    last_error: str = ""


def _key_width(data: Any) -> int | None:
    """The number of key dimensions of a saved ledger's rows (None: it has no rows)."""
    rows = data.get("totals") if isinstance(data, dict) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return len(rows[0]) - 1
    return None


class StateStore:
    def __init__(
        self, directory: Path, api_url: str, keys: Mapping[str, tuple[str, ...]] | None = None
    ) -> None:
        self.directory = directory
        self.api_url = api_url
        # dataset -> the attributes its ledgers are keyed by; ledgers saved with another key (the
        # `datasets.<name>.dimensions` setting changed) are dropped on load
        self.keys = dict(keys or {})
        self.path = directory / "state.json"
        self.health = SaveHealth()
        self._instance_id = ""
        self._instance_saved = False

    def save(
        self,
        ledgers: Mapping[str, Mapping[str, Ledger]],
        zones: Mapping[str, Mapping[str, Ledger]] | None = None,
    ) -> None:
        def section(by_scope: Mapping[str, Mapping[str, Ledger]]) -> dict[str, Any]:
            return {
                tag: {dataset: ledger.to_json() for dataset, ledger in by_dataset.items()}
                for tag, by_dataset in by_scope.items()
            }

        document = {
            "format": FORMAT,
            "api_url": self.api_url,
            "saved_at": time.time(),
            "accounts": section(ledgers),
            "zones": section(zones or {}),
            "keys": {dataset: list(key) for dataset, key in self.keys.items()},
        }
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        write_atomically(self.path, text.encode("utf-8"))

    def persist(
        self,
        ledgers: Mapping[str, Mapping[str, Ledger]],
        zones: Mapping[str, Mapping[str, Ledger]] | None = None,
    ) -> bool:
        """save(), never raising: a failure is logged when saving starts failing and when it heals."""
        try:
            self.save(ledgers, zones)
            if self._instance_id and not self._instance_saved:
                self._save_instance_id()
        except Exception as exc:  # whatever the cause, counting goes on and the next cycle retries
            error = f"{type(exc).__name__}: {exc}"
            if self.health.ok:
                log.error(
                    "cannot save state to %s (%s); counting goes on in memory, retrying every cycle",
                    self.path,
                    error,
                )
            self.health.ok, self.health.last_error = False, error
            self.health.failures += 1
            return False
        if not self.health.ok:
            log.warning("state saved to %s again after %d failed save(s)", self.path, self.health.failures)
        self.health.ok, self.health.last_error = True, ""
        return True

    def instance_id(self) -> str:
        """The saved service.instance.id, or a new one saved for the next start."""
        path = self.directory / INSTANCE_FILE
        saved = ""
        try:
            saved = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read %s (%s); using a new service.instance.id", path, exc)
        if saved and len(saved) <= MAX_INSTANCE_ID and saved.isprintable():
            self._instance_id, self._instance_saved = saved, True
            return saved
        if saved:
            log.error("%s does not hold a usable service.instance.id; using a new one", path)
        self._instance_id = new_instance_id()
        with contextlib.suppress(OSError):  # a failing directory shows with the first state save
            self._save_instance_id()
        return self._instance_id

    def _save_instance_id(self) -> None:
        write_atomically(self.directory / INSTANCE_FILE, f"{self._instance_id}\n".encode())
        self._instance_saved = True

    def load(self, shapes: Shapes) -> Ledgers:
        """The saved account ledgers of the datasets in `shapes` (dataset -> (counter fields, key
        width)); ledgers of datasets no longer counted are left out."""
        return self.load_all(shapes)[0]

    def load_all(self, shapes: Shapes) -> tuple[Ledgers, Ledgers]:
        """The saved ledgers by account and by zone."""
        if not self.path.exists():
            return {}, {}
        try:
            text = self.path.read_text(encoding="utf-8")
            document = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
            return self._parse(document, shapes)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"state.json.bad-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "state file %s is unusable (%s); moved it to %s and starting fresh", self.path, exc, aside
            )
            return {}, {}

    def _parse(self, document: Any, shapes: Shapes) -> tuple[Ledgers, Ledgers]:
        if not isinstance(document, dict) or document.get("format") not in (1, FORMAT):
            raise ValueError("not an otelbridge state file of a known format")
        if document.get("api_url") != self.api_url:
            raise ValueError(f"it belongs to API {document.get('api_url')!r}, not {self.api_url!r}")
        accounts = document["accounts"]
        if not isinstance(accounts, dict):
            raise ValueError("accounts is not a mapping")
        if document["format"] == 1:  # migrate: its ledgers are the one dataset then counted
            accounts = {account: {FORMAT_1_DATASET: data} for account, data in accounts.items()}
        saved_keys = document.get("keys", {})
        if not isinstance(saved_keys, dict):
            raise ValueError("keys is not a mapping")
        rekeyed = {d for d, key in saved_keys.items() if d in self.keys and list(self.keys[d]) != list(key)}
        for dataset in sorted(rekeyed & set(shapes)):
            log.warning(
                "%s is now counted by %s (saved: %s); its saved totals are dropped",
                dataset,
                ", ".join(self.keys[dataset]),
                ", ".join(map(str, saved_keys[dataset])),
            )
        kept = {d: shape for d, shape in shapes.items() if d not in rekeyed}
        return _ledgers(accounts, kept), _ledgers(document.get("zones", {}), kept)


def _ledgers(by_scope: Any, shapes: Shapes) -> Ledgers:
    if not isinstance(by_scope, dict) or not all(isinstance(a, dict) for a in by_scope.values()):
        raise ValueError("ledgers are not a mapping of datasets by account or zone")
    ledgers: Ledgers = {}
    for scope, by_dataset in by_scope.items():
        for dataset, data in by_dataset.items():
            if dataset not in shapes:
                continue
            fields, width = shapes[dataset]
            saved = _key_width(data)
            if saved not in (None, width):
                # A file without `keys` whose dataset is now grouped otherwise: its totals cannot be
                # split or merged, so it alone counts again from the lookback.
                log.warning(
                    "%s %s: saved grouped by %d dimensions, now by %d; counting it again",
                    scope,
                    dataset,
                    saved,
                    width,
                )
                continue
            ledger = Ledger.from_json(data, fields, width)
            if ledger.settled.utcoffset() is None or ledger.counted.utcoffset() is None:
                raise ValueError(f"{scope} {dataset}: times without a timezone")
            ledgers.setdefault(str(scope), {})[str(dataset)] = ledger
    return ledgers
