"""The /metrics endpoint: localhost by default, TLS and basic auth from a web config file, and a
scrape that never waits for Cloudflare."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from otelbridge import server, web_config
from otelbridge.bridge import Bridge
from otelbridge.clock import ManualClock
from otelbridge.config import Config, ConfigError
from otelbridge.simulator import Simulator
from tests.certs import self_signed


def tls_and_basic_auth(tmp_path: Path, user: str, password: str) -> tuple[web_config.WebConfig, Path]:
    """A web config file with a self-signed certificate and one user; returns it and the certificate."""
    cert, key = self_signed(tmp_path)
    digest = hashlib.sha256(password.encode()).hexdigest()
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
        f"basic_auth_users:\n  {user}: sha256:{digest}\n"
    )
    return web_config.load(path), cert


async def test_tls_and_basic_auth(tmp_path: Path, sim: Simulator, make_bridge: Callable[..., Bridge]) -> None:
    web, cert = tls_and_basic_auth(tmp_path, "prometheus", "s3cret")
    bridge = make_bridge()
    await bridge.start()
    await bridge.poll_once()
    runner, port = await server.serve(
        server.app(bridge.page, bridge.status, web), "127.0.0.1", 0, web.tls_context()
    )
    trust = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}/metrics"
    good = "Basic " + base64.b64encode(b"prometheus:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"prometheus:guess").decode()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url, ssl=trust) as r:
                assert r.status == 401
            async with s.get(url, ssl=trust, headers={"Authorization": bad}) as r:
                assert r.status == 401
            async with s.get(url, ssl=trust, headers={"Authorization": good}) as r:
                assert r.status == 200
                assert "cloudflare_workers_requests_total" in await r.text()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with s.get(url):  # the system trust store does not know our certificate
                    pass
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("basic_auth_users:\n  u: plaintext\n", "must be a bcrypt or sha256: hash"),
        ("tls_server_config:\n  cert_file: a.crt\n", "needs both cert_file and key_file"),
        ("http_server_config: {}\n", "unknown key 'http_server_config'"),
    ],
)
def test_bad_web_config(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        web_config.load(path)


async def test_scrapes_answer_at_once_while_cloudflare_is_stuck(
    sim: Simulator, clock: ManualClock, make_config: Callable[..., Config], make_bridge: Callable[..., Bridge]
) -> None:
    bridge = make_bridge(make_config(request_timeout=__import__("datetime").timedelta(seconds=20)))
    await bridge.start()
    await bridge.poll_once()
    runner, port = await server.serve(server.app(bridge.page, bridge.status), "127.0.0.1", 0)
    sim.knobs.latency = 10  # Cloudflare hangs
    clock.advance(60)
    poll = asyncio.create_task(bridge.poll_once())
    try:
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                started = time.perf_counter()
                async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                    assert r.status == 200
                    assert "cloudflare_workers_requests_total" in await r.text()
                assert time.perf_counter() - started < 1.0
        assert not poll.done(), "the poll was still waiting on Cloudflare during the scrapes"
    finally:
        poll.cancel()
        sim.knobs.latency = 0
        await runner.cleanup()


def test_default_listen_address_is_localhost() -> None:
    assert Config().prometheus_host == "localhost"
