"""service.instance.id is kept in the state directory, so a restarted bridge continues the same
OTLP series; OTEL_RESOURCE_ATTRIBUTES wins; without a state directory each start picks a new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from otelbridge.bridge import Bridge
from otelbridge.config import Config

INSTANCE = "service.instance.id"


def instance_of(bridge: Bridge) -> str:
    return str(bridge.provider._sdk_config.resource.attributes[INSTANCE])


@pytest.fixture(autouse=True)
def no_resource_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


def test_the_id_is_saved_and_reused(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    config = make_config()
    first = instance_of(make_bridge(config))
    assert config.state_dir is not None
    assert (config.state_dir / "instance-id").read_text().strip() == first
    assert instance_of(make_bridge(config)) == first
    assert instance_of(make_bridge(make_config(state_dir=None))) != first


def test_otel_resource_attributes_win(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config()
    saved = instance_of(make_bridge(config))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pinned-by-env")
    assert instance_of(make_bridge(config)) == "pinned-by-env"
    assert saved != "pinned-by-env"


def test_an_unusable_id_file_is_replaced(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    config = make_config()
    assert config.state_dir is not None
    config.state_dir.mkdir(parents=True)
    (config.state_dir / "instance-id").write_text("bad\x00id\n")
    fresh = instance_of(make_bridge(config))
    assert "\x00" not in fresh and fresh
    assert instance_of(make_bridge(config)) == fresh


async def test_an_id_not_saved_at_start_is_saved_with_the_next_state(
    make_config: Callable[..., Config], make_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    config = make_config(state_dir=blocker / "state")
    bridge = make_bridge(config)
    chosen = instance_of(bridge)
    await bridge.start()
    blocker.unlink()
    await bridge.poll_once()
    assert (blocker / "state" / "instance-id").read_text().strip() == chosen
    assert instance_of(make_bridge(config)) == chosen


@pytest.mark.parametrize(("length", "kept"), [(128, True), (129, False)])
def test_an_id_file_is_used_up_to_128_characters(
    length: int, kept: bool, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    config = make_config()
    assert config.state_dir is not None
    config.state_dir.mkdir(parents=True)
    saved = "i" * length
    (config.state_dir / "instance-id").write_text(saved + "\n")
    assert (instance_of(make_bridge(config)) == saved) is kept
