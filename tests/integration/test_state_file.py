"""The state file on disk: durable renames, no temporary files left by a failed save, and values no
ledger can hold (NaN, infinities, times without a timezone) set aside like any unusable file."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.config import Config
from otelbridge.ledger import Ledger
from otelbridge.simulator import Simulator
from otelbridge.state import StateStore, write_atomically
from tests.datasets import WORKERS


def test_the_directory_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        synced.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "state.json", b"{}")
    assert synced == ["file", "rename", "directory"]


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "http://api")
    (tmp_path / "state.json").mkdir()  # the rename over it fails
    (tmp_path / "state.json" / "keep").write_text("x")
    with pytest.raises(OSError):
        store.save({})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert store.persist({}) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert store.health.failures == 1 and not store.health.ok


def _spoil_number(document: dict[str, Any], text: str) -> str:
    account = next(iter(document["accounts"].values()))[WORKERS]
    account["totals"][0][2][0] = "SPOIL"
    return json.dumps(document).replace('"SPOIL"', text)


def _naive(document: dict[str, Any]) -> str:
    for account in (a[WORKERS] for a in document["accounts"].values()):
        for key in ("settled", "counted"):
            account[key] = account[key].split("+")[0]
    return json.dumps(document)


SPOILERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "NaN": lambda d: _spoil_number(d, "NaN"),
    "Infinity": lambda d: _spoil_number(d, "Infinity"),
    "-Infinity": lambda d: _spoil_number(d, "-Infinity"),
    "overflowing float": lambda d: _spoil_number(d, "1e999"),
    "times without timezone": _naive,
}


@pytest.mark.parametrize("spoil", list(SPOILERS))
async def test_non_finite_numbers_and_naive_times_are_set_aside(
    spoil: str,
    sim: Simulator,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config()
    assert config.state_dir is not None
    first = make_bridge(config)
    await first.start()
    await first.poll_once()
    path = config.state_dir / "state.json"
    document = json.loads(path.read_text())
    assert "+00:00" in next(iter(document["accounts"].values()))[WORKERS]["settled"]
    path.write_text(SPOILERS[spoil](document))

    second = make_bridge(config)
    with caplog.at_level(logging.ERROR):
        await second.start()
    assert "moved it to" in caplog.text
    assert list(config.state_dir.glob("state.json.bad-*"))
    assert all(not s.ledgers[WORKERS].totals for s in second.accounts.values()), "counting starts fresh"


def test_a_ledger_that_cannot_be_written_as_json_is_a_failed_save(tmp_path: Path) -> None:
    ledger = Ledger.starting_at(("requests",), datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    ledger.totals[("s", "success")] = (float("nan"),)
    store = StateStore(tmp_path, "http://api")
    assert not store.persist({"a": {WORKERS: ledger}})
    assert "ValueError" in store.health.last_error
    assert not (tmp_path / "state.json").exists()


def test_before_the_first_save_the_status_shows_state_ok(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config())
    assert bridge.status()["state"] == {"ok": True, "last_error": None, "failures": 0}
