"""The state file is replaced atomically: a save that fails or is killed midway leaves the
previous state intact and loadable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otelbridge.ledger import Ledger
from otelbridge.state import Ledgers, StateStore

FIELDS = ("requests", "errors")
DATASET = "someDataset"  # the store keeps ledgers by account and dataset, whatever the dataset
SHAPES = {DATASET: (FIELDS, 2)}
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
API = "http://127.0.0.1:1/client/v4"


def ledger(scripts: int, value: int) -> Ledger:
    out = Ledger.starting_at(FIELDS, T0)
    out.counted = out.settled = T0 + timedelta(minutes=value)
    out.final = {(f"script-{i}", "success"): (value * i, i) for i in range(scripts)}
    out.totals = dict(out.final)
    out.seen = dict.fromkeys(out.final, out.counted)
    return out


def by_dataset(ledgers: dict[str, Ledger]) -> Ledgers:
    return {account: {DATASET: one} for account, one in ledgers.items()}


def as_json(ledgers: Ledgers) -> dict[str, Any]:
    return {a: {d: lg.to_json() for d, lg in by.items()} for a, by in ledgers.items()}


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state", API)


def test_saved_state_loads_back_equal(store: StateStore) -> None:
    ledgers = {"a" * 32: ledger(5, 3), "b" * 32: ledger(2, 7)}
    store.save(by_dataset(ledgers))
    assert as_json(store.load(SHAPES)) == as_json(by_dataset(ledgers))


@pytest.mark.parametrize("fails", ["write", "os.fsync", "os.replace"])
def test_a_save_failing_midway_leaves_the_previous_state(
    fails: str, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {"a" * 32: ledger(50, 1)}
    store.save(by_dataset(before))

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    if fails == "write":  # part of the document reaches the disk, then it is full

        class HalfWritten:
            def __init__(self, f: Any) -> None:
                self.f = f

            def __enter__(self) -> HalfWritten:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

            def write(self, data: bytes) -> None:
                self.f.write(data[: len(data) // 2])
                disk_full()

        monkeypatch.setattr(
            "otelbridge.state.open",
            lambda *a, **k: HalfWritten(open(*a, **k)),  # noqa: SIM115 (closed by HalfWritten)
            raising=False,
        )
    else:
        module, name = fails.split(".")
        monkeypatch.setattr(f"otelbridge.state.{module}.{name}", disk_full)
    with pytest.raises(OSError):
        store.save(by_dataset({"a" * 32: ledger(50, 2)}))
    monkeypatch.undo()
    assert json.loads(store.path.read_text(encoding="utf-8"))["accounts"]  # still a whole document
    assert as_json(store.load(SHAPES)) == as_json(by_dataset(before))
    assert sorted(p.name for p in store.directory.iterdir()) == ["state.json"]  # no temporary file


SAVER = """
import sys
from pathlib import Path
from tests.unit.test_state import API, by_dataset, ledger
from otelbridge.state import StateStore

store = StateStore(Path(sys.argv[1]), API)
big = [by_dataset({"a" * 32: ledger(5_000, v)}) for v in (1, 2)]
store.save(big[0])
print("ready", flush=True)
i = 0
while True:
    i += 1
    store.save(big[i % 2])
"""


def test_a_save_killed_midway_leaves_a_whole_state(store: StateStore, tmp_path: Path) -> None:
    """kill -9 at arbitrary moments of a save loop: the file left is always one whole save."""
    root = Path(__file__).resolve().parents[2]
    wanted = [as_json(by_dataset({"a" * 32: ledger(5_000, v)})) for v in (1, 2)]
    for attempt in range(3):
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(store.directory)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.PIPE,
        )
        assert saver.stdout is not None and saver.stdout.readline() == b"ready\n"
        time.sleep(0.1 + 0.13 * attempt)  # lands at different points of a save
        saver.send_signal(signal.SIGKILL)
        saver.wait(10)
        assert as_json(store.load(SHAPES)) in wanted
        assert not list(store.directory.glob("state.json.bad-*")), "the state was never unusable"


def corrupt(document: dict[str, Any], change: str) -> None:
    if change == "accounts not a mapping":
        document["accounts"] = list(document["accounts"].values())
        return
    if change == "datasets not a mapping":
        document["accounts"]["a" * 32] = list(document["accounts"]["a" * 32].values())
        return
    ledger = document["accounts"]["a" * 32][DATASET]
    row = ledger["final"][0]
    if change == "fields renamed":
        ledger["fields"] = ["requests", "failures"]
    elif change == "script not a string":
        row[0] = 7
    elif change == "status not a string":
        row[1] = None
    elif change == "vector too short":
        row[2] = row[2][:1]
    elif change == "boolean value":
        row[2][0] = True
    elif change == "string value":
        row[2][1] = "3"
    elif change == "exact sum not a string":
        ledger["floats"] = ["errors"]  # the row holds a plain number where "n/d" belongs
    elif change == "unknown float field":
        ledger["floats"] = ["nope"]
    elif change == "settled after counted":
        ledger["settled"] = "2026-11-26T11:00:00+00:00"


CORRUPTIONS = [
    "accounts not a mapping",
    "datasets not a mapping",
    "fields renamed",
    "script not a string",
    "status not a string",
    "vector too short",
    "boolean value",
    "string value",
    "settled after counted",
    "unknown float field",
    "exact sum not a string",
]


@pytest.mark.parametrize("change", CORRUPTIONS)
def test_a_state_file_with_a_bad_ledger_is_set_aside(change: str, store: StateStore) -> None:
    store.save(by_dataset({"a" * 32: ledger(3, 2)}))
    document = json.loads(store.path.read_text(encoding="utf-8"))
    corrupt(document, change)
    store.path.write_text(json.dumps(document), encoding="utf-8")
    assert store.load(SHAPES) == {}
    assert len(list(store.directory.glob("state.json.bad-*"))) == 1


def test_the_state_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "not" / "yet" / "there", API)
    store.save(by_dataset({"a" * 32: ledger(1, 1)}))
    assert as_json(store.load(SHAPES)) == as_json(by_dataset({"a" * 32: ledger(1, 1)}))


def test_saving_every_cycle_keeps_no_file_open(store: StateStore) -> None:
    store.persist(by_dataset({"a" * 32: ledger(3, 2)}))
    before = len(os.listdir("/proc/self/fd"))
    for value in range(20):
        assert store.persist(by_dataset({"a" * 32: ledger(3, value)}))
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_nan_anywhere_sets_the_file_aside(store: StateStore) -> None:
    store.save(by_dataset({"a" * 32: ledger(3, 2)}))
    document = json.loads(store.path.read_text(encoding="utf-8"))
    document["saved_at"] = "SPOIL"  # a field loading does not even use
    store.path.write_text(json.dumps(document).replace('"SPOIL"', "NaN"), encoding="utf-8")
    assert store.load(SHAPES) == {}
    assert len(list(store.directory.glob("state.json.bad-*"))) == 1


def test_a_file_of_plain_float_sums_from_before_exact_sums_loads(store: StateStore) -> None:
    older = ledger(2, 3)
    older.final = older.totals = {("s", "success"): (4, 0.30000000000000004)}
    older.seen = dict.fromkeys(older.final, older.counted)
    store.save(by_dataset({"a" * 32: older}))
    document = json.loads(store.path.read_text(encoding="utf-8"))
    assert "0.30000000000000004" in store.path.read_text(encoding="utf-8")
    del document["accounts"]["a" * 32][DATASET]["floats"]
    store.path.write_text(json.dumps(document), encoding="utf-8")
    assert store.load(SHAPES) == by_dataset({"a" * 32: older})


def test_the_instance_id_is_written_once_not_with_every_save(store: StateStore) -> None:
    store.persist(by_dataset({"a" * 32: ledger(3, 2)}))
    assert not (store.directory / "instance-id").exists()  # no id asked for, none written
    chosen = store.instance_id()
    path = store.directory / "instance-id"
    written = (path.stat().st_ino, path.stat().st_mtime_ns)  # each write is a new file renamed over it
    for value in range(3):
        store.persist(by_dataset({"a" * 32: ledger(3, value)}))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written
    assert path.read_text().strip() == chosen
    restarted = StateStore(store.directory, API)  # reads the id back: nothing to write either
    assert restarted.instance_id() == chosen
    restarted.persist({"a" * 32: ledger(3, 5)})
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written
