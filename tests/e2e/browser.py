"""Debian's Chromium, headless, for looking at the status page as a person would.

Installed with apt-get when missing and this runs as root (CI does); a screenshot is written where
OTELBRIDGE_TEST_OUTPUT points (default: test-output/ at the repository root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "chromium"
COMMON_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run")


def test_output_dir() -> Path:
    path = Path(os.environ.get("OTELBRIDGE_TEST_OUTPUT", REPO_ROOT / "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_chromium() -> str | None:
    """The chromium binary, installing Debian's package first when possible."""
    found = shutil.which(CHROMIUM)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", CHROMIUM]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)
    return shutil.which(CHROMIUM)


async def _run(binary: str, *args: str, timeout: float = 60) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        binary, *COMMON_FLAGS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode(errors="replace"), err.decode(errors="replace")


async def dump_dom(binary: str, url: str) -> tuple[str, list[str]]:
    """The DOM after load, and every console message the page produced."""
    dom, log = await _run(binary, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    return dom, console


async def screenshot(binary: str, url: str, path: Path, width: int = 1280, height: int = 2000) -> None:
    await _run(binary, f"--window-size={width},{height}", f"--screenshot={path}", url)
    assert path.exists() and path.stat().st_size > 0, f"no screenshot at {path}"
