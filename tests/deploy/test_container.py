"""The container image, built by scripts/build-image.sh, run from its own filesystem.

`podman run` cannot work on these machines (no CAP_SYS_RESOURCE), so the test does what a
runtime does: unpack the image's filesystem, and start its ENTRYPOINT + CMD in a chroot as the
image's USER with the image's environment (plus what an operator would pass with -e), against
the simulated Cloudflare API. The host's network is shared, so 127.0.0.1 reaches the simulator.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import (
    SIM_TOKEN,
    OtlpSink,
    all_accounts_up,
    require_root,
    run_build_script,
    wait_serving,
)
from tests.integration.test_process import free_port, get, wait_for

STATE = "/var/lib/otelbridge"
TOKEN_PATH = "/run/secrets/cloudflare-api-token"


@dataclass(frozen=True)
class Image:
    root: Path
    config: dict[str, Any]
    healthcheck: list[str]

    @property
    def uid_gid(self) -> tuple[int, int]:
        # No USER means root, as for any container runtime.
        uid, _, gid = str(self.config.get("User") or "0").partition(":")
        return int(uid), int(gid or uid)

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Env"])

    def chroot(self, argv: list[str], state: Path) -> list[str]:
        """argv run inside the image as its user, from its working directory, the way Kubernetes
        runs it: root filesystem read-only, `state` mounted on the state volume, /tmp a tmpfs."""
        uid, gid = self.uid_gid
        root = shlex.quote(str(self.root))
        mounts = " && ".join(
            [
                f"mount --bind {root} {root}",
                f"mount -o remount,bind,ro {root}",
                f"mount --bind {shlex.quote(str(state))} {root}{STATE}",
                f"mount -t tmpfs -o size=64m tmpfs {root}/tmp",
            ]
        )
        workdir = self.config.get("WorkingDir") or "/"
        inside = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', workdir, *argv]
        chroot = shlex.join(["chroot", f"--userspec={uid}:{gid}", str(self.root), *inside])
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{mounts} && exec {chroot}"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    require_root("unpacking the image and chroot into it")
    export = Path(run_build_script("build-image.sh", "OTELBRIDGE_IMAGE_EXPORT"))
    inspect = json.loads((export / "image.json").read_text())[0]
    root = tmp_path_factory.mktemp("image") / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(export / "rootfs.tar"), "-C", str(root)], check=True)
    test = inspect["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    return Image(root, inspect["Config"], test[1:])


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    env: dict[str, str]
    state: Path


def start(image: Image, extra_env: Mapping[str, str], tmp_path: Path) -> Running:
    port = free_port()
    env = {**image.env, **extra_env, "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)}
    state = tmp_path / "volume"
    state.mkdir(mode=0o700)
    os.chown(state, *image.uid_gid)
    log = tmp_path / "bridge.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            image.chroot([*image.config["Entrypoint"], *image.config["Cmd"]], state),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Running(process, port, log, env, state)


def stop(running: Running) -> None:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(15)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(5)


@pytest.fixture
def token_in_image(image: Image) -> Iterator[str]:
    """The API token as a mounted secret file only the image's user can read."""
    path = image.root / TOKEN_PATH.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SIM_TOKEN + "\n")
    os.chown(path, *image.uid_gid)
    path.chmod(0o400)
    yield TOKEN_PATH
    path.unlink()


def test_image_declares_user_state_volume_port_and_healthcheck(image: Image) -> None:
    uid, gid = image.uid_gid
    assert uid != 0 and gid != 0, "USER must be a numeric non-root user (runAsNonRoot checks it)"
    assert STATE in image.config["Volumes"]
    assert image.env["OTELBRIDGE_STATE_DIR"] == STATE
    assert image.env["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"
    assert image.env["OTEL_EXPORTER_PROMETHEUS_PORT"] == "9464"
    assert "9464/tcp" in image.config["ExposedPorts"]
    assert any("/-/healthy" in part for part in image.healthcheck)
    state = (image.root / STATE.lstrip("/")).stat()
    assert (state.st_uid, state.st_gid) == (uid, gid), "the state directory belongs to the image's user"
    assert not any(k.startswith("CLOUDFLARE_") for k in image.env), "no credential baked into the image"


def test_image_serves_workers_metrics_as_non_root_with_token_file_and_otlp(
    image: Image, simulator_url: str, token_in_image: str, otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    running = start(
        image,
        {
            "OTELBRIDGE_API_URL": simulator_url,
            "CLOUDFLARE_API_TOKEN_FILE": token_in_image,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.url,
            "OTELBRIDGE_POLL_INTERVAL": "1s",
            "OTELBRIDGE_DELAY": "0s",
            "OTELBRIDGE_SETTLE": "0s",
            "OTELBRIDGE_LOOKBACK": "5m",
        },
        tmp_path,
    )
    base = f"http://127.0.0.1:{running.port}"
    try:
        wait_serving(
            running.process,
            running.log,
            lambda: "cloudflare_workers_requests_total{" in get(f"{base}/metrics"),
            90,
        )
        wait_for(lambda: all_accounts_up(f"{base}/status"), 30)
        assert get(f"{base}/-/healthy")

        uids = _proc_ids(running.process.pid, "Uid")
        assert uids == {image.uid_gid[0]}, f"the process runs as the image's user, not {uids}"
        assert _proc_ids(running.process.pid, "Gid") == {image.uid_gid[1]}

        healthcheck = subprocess.run(
            image.chroot(image.healthcheck, running.state), env=running.env, timeout=30
        )
        assert healthcheck.returncode == 0

        wait_for(lambda: any(path == "/v1/metrics" and size for path, size in otlp_sink.received), 60)
        wait_for(lambda: (running.state / "state.json").exists(), 30)
    finally:
        stop(running)
    log = running.log.read_text(errors="replace")
    assert SIM_TOKEN not in log, "the API token leaked into the log"
    unhealthy = subprocess.run(
        image.chroot(image.healthcheck, running.state), env=running.env, timeout=30, capture_output=True
    )
    assert unhealthy.returncode != 0, "the healthcheck fails once the bridge is gone"


def test_image_with_unreadable_token_file_exits_2_naming_the_variable(
    image: Image, simulator_url: str, tmp_path: Path
) -> None:
    running = start(
        image,
        {"OTELBRIDGE_API_URL": simulator_url, "CLOUDFLARE_API_TOKEN_FILE": "/run/secrets/absent"},
        tmp_path,
    )
    assert running.process.wait(60) == 2
    assert "CLOUDFLARE_API_TOKEN_FILE: cannot read /run/secrets/absent" in running.log.read_text()


def _proc_ids(pid: int, field: str) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return {int(v) for v in line.split()[1:]}
    raise AssertionError(f"no {field} in /proc/{pid}/status")
