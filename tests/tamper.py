"""A real HTTP proxy in front of the simulated API that can rewrite its answers.

Cloudflare can send answers the simulator never would (wrong types, duplicates, NaN); the proxy
lets a test put exactly such an answer on the wire while everything else stays real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.datasets import GAUGES

Rewrite = Callable[[Any], Any]


def workers_node(body: Any) -> dict[str, Any] | None:
    """The account node of a Workers query answer (the one with aliases), if this is one."""
    try:
        node = body["data"]["viewer"]["accounts"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return node if isinstance(node, dict) and GAUGES in node else None


def settings_node(body: Any) -> dict[str, Any] | None:
    """The `settings` of a settings answer's account node, if this is one."""
    try:
        node = body["data"]["viewer"]["accounts"][0]["settings"]
    except (KeyError, IndexError, TypeError):
        return None
    return node if isinstance(node, dict) else None


class TamperProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite: Rewrite | None = None  # applied to Workers answers only
        self.rewrite_other: Rewrite | None = None  # applied to every other JSON answer (settings, REST)
        self.rewrite_settings: Rewrite | None = None  # applied to settings answers only
        self.raw_text: str | None = None  # sent instead of the re-encoded JSON (e.g. with NaN)
        self.headers_seen: list[dict[str, str]] = []  # request headers, for tests of what was sent
        self.variables: dict[str, Any] = {}  # the GraphQL variables of the request being answered
        self.stall_next = 0  # this many next requests wait `stall_seconds` before being forwarded
        self.stall_seconds = 0.0
        self.spoiled_served = 0  # rewritten answers actually sent back to the client
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/client/v4/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        self.headers_seen.append(dict(request.headers))
        if self.stall_next > 0:
            self.stall_next -= 1
            await asyncio.sleep(self.stall_seconds)
        url = f"{self.upstream}/{request.match_info['tail']}"
        body = await request.read()
        try:
            self.variables = dict(json.loads(body).get("variables") or {})
        except (ValueError, AttributeError, TypeError):
            self.variables = {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, url, headers=headers, params=request.query, data=body
            ) as upstream,
        ):
            text = await upstream.text()
            status = upstream.status
        if self.rewrite is not None or self.rewrite_other is not None or self.rewrite_settings is not None:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if workers_node(body) is not None and self.rewrite is not None:
                rewritten = self.rewrite(body)
                text = self.raw_text if self.raw_text is not None else json.dumps(rewritten)
                self.spoiled_served += 1
            elif body is not None and workers_node(body) is None and self.rewrite_other is not None:
                text = json.dumps(self.rewrite_other(body))
            if self.rewrite_settings is not None and settings_node(body) is not None:
                text = json.dumps(self.rewrite_settings(body))
        return web.Response(text=text, status=status, content_type="application/json")
