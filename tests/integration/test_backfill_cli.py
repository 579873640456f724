"""`otelbridge backfill` as a process, against the simulated API in its own process with failures
injected (server errors, malformed answers, connection resets): retried, logged, finished."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.test_process import SECRET, bridge_env, free_port, simulator_process  # noqa: F401


def backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "otelbridge", "backfill", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_backfill_command_writes_files_and_state_logs_progress_and_finishes_once(
    simulator_process: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env = bridge_env(simulator_process, state, free_port())
    env.update(OTELBRIDGE_SETTLE="5m", OTELBRIDGE_DELAY="1m", OTELBRIDGE_LOG_LEVEL="INFO")
    out = tmp_path / "om"
    done = backfill(env, "--since", "3h", "--step", "5m", "--output", str(out), "--label", "job=otelbridge")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-2000:]
    assert SECRET not in log
    assert "backfill done" in log and "per day of history per account" in log
    files = sorted(out.glob("*.om"))
    assert files and all(f.read_text().endswith("# EOF\n") for f in files)
    saved = json.loads((state / "state.json").read_text())
    progress = json.loads((out / "progress.json").read_text())
    assert progress["handed_over"] and set(saved["accounts"]) == set(progress["accounts"])
    for by_dataset in saved["accounts"].values():
        assert {ledger["settled"] for ledger in by_dataset.values()} == {progress["end"]}

    again = backfill(env, "--since", "3h", "--step", "5m", "--output", str(out))
    assert again.returncode == 0 and "finished and handed over" in again.stdout + again.stderr
