"""The HTML status page behind the same TLS and basic auth as /metrics, and /metrics before the
first render."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp

from otelbridge import server, statuspage, telemetry
from otelbridge.bridge import Bridge
from otelbridge.exposition import MetricsPage
from tests.conftest import TOKEN
from tests.integration.test_endpoint import tls_and_basic_auth


async def test_status_page_over_tls_with_basic_auth(
    tmp_path: Path, make_bridge: Callable[..., Bridge]
) -> None:
    web, cert = tls_and_basic_auth(tmp_path, "ops", "s3cret")
    bridge = make_bridge()
    await bridge.start()
    await bridge.poll_once()
    application = server.app(bridge.page, bridge.status, web, statuspage.for_bridge(bridge))
    runner, port = await server.serve(application, "127.0.0.1", 0, web.tls_context())
    trust = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}/"
    good = "Basic " + base64.b64encode(b"ops:s3cret").decode()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url, ssl=trust) as r:
                assert r.status == 401
                body = await r.text()
                assert not any(tag in body for tag in bridge.accounts)
            async with s.get(url, ssl=trust, headers={"Authorization": good}) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/html")
                page = await r.text()
    finally:
        await runner.cleanup()
    for tag in bridge.accounts:
        assert tag in page
    assert "api-gateway" in page and "<svg" in page
    assert TOKEN not in page


async def test_metrics_answer_503_until_the_first_render() -> None:
    page = MetricsPage(telemetry.cardinality_limits(10))
    runner, port = await server.serve(server.app(page, dict), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 503
            page.render()
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
