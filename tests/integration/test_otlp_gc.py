"""The cyclic GC is held off while an OTLP export is encoded, never while it is sent: a Collector that
hangs must not leave the whole process without a garbage collector for the OTLP timeout."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otelbridge.bridge import Bridge
from otelbridge.config import Config
from otelbridge.simulator import Simulator


class HangingCollector:
    """Accepts connections and never answers, like a Collector stuck behind a full queue."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connected = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(5)


@pytest.fixture
def hanging() -> Iterator[HangingCollector]:
    collector = HangingCollector()
    yield collector
    collector.close()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_gc_is_held_while_encoding_and_free_while_sending(
    protocol: str,
    hanging: HangingCollector,
    sim: Simulator,
    make_config: Callable[..., Config],
    make_bridge: Callable[..., Bridge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    bridge = make_bridge(make_config(otlp_endpoint=f"http://127.0.0.1:{hanging.port}"))
    exporter: Any = bridge.otlp_exporter
    assert exporter is not None
    seen: dict[str, bool] = {}
    encode, send = exporter.encode, exporter.send

    def spy_encode(data: Any) -> Any:
        for batch in encode(data):  # the work happens as each batch is taken
            seen["encoding"] = gc.isenabled()
            yield batch

    def spy_send(batches: Any) -> Any:
        seen["sending"] = gc.isenabled()
        return send(batches)

    exporter.encode, exporter.send = spy_encode, spy_send
    assert gc.isenabled()
    await bridge.start()
    await bridge.poll_once()  # starts the export in the background
    assert await asyncio.to_thread(hanging.connected.wait, 10), "the export never reached the Collector"
    task = bridge._otlp_task
    assert task is not None
    # The send is now waiting on the Collector: the rest of the process has its GC.
    for _ in range(5):
        assert not task.done(), "the send should still be waiting"
        assert gc.isenabled(), "the GC is held off during the network send"
        await asyncio.sleep(0.1)
    await task
    assert seen == {"encoding": False, "sending": True}
    assert bridge.outcomes_otlp["failure"] == 1
    assert gc.isenabled()
