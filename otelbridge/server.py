"""The HTTP endpoint: /metrics from the pre-rendered page, /status (JSON), /-/healthy, and the
HTML status page at /.

It runs on the bridge's event loop and only copies bytes, so a scrape never waits on Cloudflare.
Optional TLS and basic auth follow Prometheus's web config file (see web_config.py).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otelbridge.exposition import CONTENT_TYPE, MetricsPage
from otelbridge.web_config import WebConfig

Status = Callable[[], dict[str, Any]]
Html = Callable[[], str]

LANDING = """<!doctype html><html><head><title>otelbridge</title></head><body>
<h1>otelbridge</h1><p>Cloudflare Workers analytics as OpenTelemetry metrics.</p>
<ul><li><a href="metrics">/metrics</a>: Prometheus exposition</li>
<li><a href="status">/status</a>: accounts, watermarks, last errors (JSON)</li></ul></body></html>
"""


def _accepts_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def app(
    page: MetricsPage, status: Status, web_config: WebConfig | None = None, status_html: Html | None = None
) -> web.Application:
    """The server may listen before the first page is rendered (the port is taken before
    Cloudflare is contacted); until then /metrics answers 503, as a failed scrape."""

    async def metrics(request: web.Request) -> web.StreamResponse:
        current = page.page
        if not current.rendered_at:
            return web.Response(status=503, text="otelbridge is starting: no metrics rendered yet\n")
        if _accepts_gzip(request):
            response = web.Response(body=current.gzipped, headers={"Content-Encoding": "gzip"})
        else:
            response = web.Response(body=current.body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def status_page(request: web.Request) -> web.StreamResponse:
        return web.Response(text=json.dumps(status(), indent=2), content_type="application/json")

    async def healthy(request: web.Request) -> web.StreamResponse:
        return web.Response(text="OK\n")

    async def landing(request: web.Request) -> web.StreamResponse:
        text = status_html() if status_html is not None else LANDING
        return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})

    middlewares = []
    if web_config is not None and web_config.users:
        middlewares.append(_basic_auth(web_config))
    application = web.Application(middlewares=middlewares)
    application.router.add_get("/metrics", metrics)
    application.router.add_get("/status", status_page)
    application.router.add_get("/-/healthy", healthy)
    application.router.add_get("/", landing)
    return application


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _basic_auth(config: WebConfig) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/-/healthy" and not config.authorized(request.headers.get("Authorization", "")):
            return web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="otelbridge"'}
            )
        return await handler(request)

    return check


async def serve(
    application: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port (port 0 picks one)."""
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
