"""The simulated Cloudflare API over real HTTP (aiohttp), with faults, rate limits and a query log."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, TypeGuard

from aiohttp import web
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
    parse,
    validate,
    value_from_ast_untyped,
)

from otelbridge.clock import Clock
from otelbridge.simulator.auth import DEFAULT_CREDENTIALS, AuthFailure, Credential, authenticate
from otelbridge.simulator.datasets import SPECS
from otelbridge.simulator.execution import RequestContext
from otelbridge.simulator.knobs import FAULT_KINDS, FaultKind, Knobs
from otelbridge.simulator.resolvers import DATASET, load_schema
from otelbridge.simulator.rest import accounts_page, zones_page
from otelbridge.simulator.traffic import Traffic

BUDGET_MESSAGE = "rate limiter budget depleted, try again after 5 minutes"
UNAVAILABLE_MESSAGE = "unable to execute query, please try again later"
# What Cloudflare's edge serves when the origin API is down.
_EDGE_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


# a REST listing: (traffic, credential, query string) -> Cloudflare's envelope
Listing = Callable[[Traffic, Credential, Mapping[str, str]], dict[str, Any]]


@dataclass(frozen=True)
class QueryLogEntry:
    time: datetime  # simulator clock
    endpoint: str  # "graphql", "accounts" or "zones"
    credential: str | None  # Credential.id, never the secret
    account_tags: tuple[str, ...]
    datasets: tuple[str, ...]  # response keys (aliases) of the dataset fields queried
    variables: dict[str, Any]
    operation_name: str | None
    http_status: int
    outcome: str  # "ok" or the failure: auth, budget, authz, bad_request, data_null, server_error, ...


@dataclass
class _Request:
    """What the log needs to know about a request, filled in as handling proceeds."""

    endpoint: str
    credential: str | None = None
    account_tags: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    operation_name: str | None = None


def _never(_value: Any) -> TypeGuard[Awaitable[Any]]:
    """Every resolver is synchronous; skipping graphql-core's awaitable probe saves ~10% on big pages."""
    return False


def _timestamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def graphql_errors(errors: Sequence[GraphQLError], now: datetime) -> dict[str, Any]:
    """Cloudflare's error document: no partial data, string path segments, code + timestamp."""
    return {
        "data": None,
        "errors": [
            {
                "message": e.message,
                "path": [str(p) for p in e.path] if e.path else None,
                "extensions": {
                    "code": (e.extensions or {}).get("code", "bad_request"),
                    "timestamp": _timestamp(now),
                },
            }
            for e in errors
        ],
    }


def _scan(
    document: DocumentNode, operation_name: str | None, variables: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Account tags and dataset response keys a document asks for (for the query log)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    tags: list[str] = []
    datasets: list[str] = []

    def walk(selection_set: SelectionSetNode | None, under_scope: bool) -> None:
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name == "accounts":
                    for arg in sel.arguments or ():
                        value = value_from_ast_untyped(arg.value, variables)
                        if arg.name.value == "filter" and isinstance(value, dict) and "accountTag" in value:
                            tags.append(str(value["accountTag"]))
                elif under_scope and (name == DATASET or name in SPECS):
                    datasets.append(sel.alias.value if sel.alias else name)
                walk(sel.selection_set, name in ("accounts", "zones"))
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, under_scope)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
                walk(fragments[sel.name.value].selection_set, under_scope)

    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode) and (
            operation_name is None or (d.name is not None and d.name.value == operation_name)
        ):
            walk(d.selection_set, False)
    return tags, datasets


class Simulator:
    """A simulated `https://api.cloudflare.com/client/v4` serving GraphQL analytics and /accounts."""

    def __init__(
        self,
        traffic: Traffic | None = None,
        clock: Clock | None = None,
        credentials: Sequence[Credential] | None = None,
        knobs: Knobs | None = None,
    ) -> None:
        self.traffic = traffic or Traffic.default(seed=1)
        if clock is not None:
            self.traffic.clock = clock
        self.clock = self.traffic.clock
        self.knobs = knobs or Knobs()
        self.traffic.knobs = self.knobs  # visibility and sampling follow the same knobs
        self.credentials: list[Credential] = list(credentials or DEFAULT_CREDENTIALS)
        self.query_log: list[QueryLogEntry] = []
        self.fast_rows = True  # False: let graphql-core complete every row (slow; same output)
        self.schema = load_schema()
        self.app = web.Application()
        self.app.router.add_post("/client/v4/graphql", self._graphql)
        self.app.router.add_get("/client/v4/accounts", self._listing("accounts", accounts_page))
        self.app.router.add_get("/client/v4/zones", self._listing("zones", zones_page))
        self._forced: deque[tuple[FaultKind, str]] = deque()
        self._rng = random.Random(self.knobs.fault_seed)
        self._budget: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._rng = random.Random(self.knobs.fault_seed)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = self._runner.addresses[0][:2]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/client/v4"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    # --- test controls ------------------------------------------------------------------

    def fail_next(self, kind: FaultKind, count: int = 1, endpoint: str = "graphql") -> None:
        """Make the next `count` requests to `endpoint` fail with `kind`.

        `endpoint`: "graphql", "accounts", "zones" or "any"."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        self._forced.extend([(kind, endpoint)] * count)

    def clear_faults(self) -> None:
        """Drop every one-shot fault still queued by fail_next."""
        self._forced.clear()

    def reset_log(self) -> None:
        self.query_log.clear()

    def _fault(self, endpoint: str) -> FaultKind | None:
        for i, (kind, where) in enumerate(self._forced):
            if where in (endpoint, "any"):
                del self._forced[i]
                return kind
        k = self.knobs
        chances: list[tuple[FaultKind, float]] = [
            ("reset", k.reset_probability),
            ("server_error", k.server_error_probability),
            ("malformed", k.malformed_probability),
        ]
        if endpoint == "graphql":
            chances.append(("data_null", k.data_null_probability))
        for kind, p in chances:
            if p > 0 and self._rng.random() < p:
                return kind
        return None

    # --- handlers -----------------------------------------------------------------------

    def _log(self, req: _Request, status: int, outcome: str) -> None:
        self.query_log.append(
            QueryLogEntry(
                self.clock.now(),
                req.endpoint,
                req.credential,
                req.account_tags,
                req.datasets,
                req.variables,
                req.operation_name,
                status,
                outcome,
            )
        )

    def _transport_fault(
        self, request: web.Request, req: _Request, fault: FaultKind | None
    ) -> web.Response | None:
        if fault == "reset":
            self._log(req, 0, "reset")
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # linger 0: close sends RST, the client sees a reset connection
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "server_error":
            status, reason = (
                (502, "Bad Gateway") if self._rng.random() < 0.5 else (503, "Service Temporarily Unavailable")
            )
            self._log(req, status, "server_error")
            return web.Response(
                status=status, text=_EDGE_HTML.format(status=status, reason=reason), content_type="text/html"
            )
        if fault == "html":
            self._log(req, 200, "html")
            return web.Response(text=_EDGE_HTML.format(status=200, reason="OK"), content_type="text/html")
        return None

    def _authenticate(self, request: web.Request, req: _Request) -> Credential | web.Response:
        who = authenticate(request.headers, self.credentials)
        if isinstance(who, AuthFailure):
            self._log(req, who.status, "auth")
            return web.json_response(who.body(), status=who.status)
        req.credential = who.id
        return who

    def _respond(
        self, req: _Request, body: dict[str, Any], status: int, outcome: str, fault: FaultKind | None
    ) -> web.Response:
        text = json.dumps(body)
        if fault == "malformed":
            self._log(req, status, "malformed")
            return web.Response(
                text=text[: max(1, len(text) // 2)], status=status, content_type="application/json"
            )
        self._log(req, status, outcome)
        return web.Response(text=text, status=status, content_type="application/json")

    async def _admit(
        self, request: web.Request, endpoint: str
    ) -> tuple[_Request, FaultKind | None, Credential] | web.Response:
        """What every endpoint does first: latency, edge faults, then authentication."""
        if self.knobs.latency:
            await asyncio.sleep(self.knobs.latency)
        req = _Request(endpoint)
        fault = self._fault(endpoint)
        early = self._transport_fault(request, req, fault)
        if early is not None:
            return early
        who = self._authenticate(request, req)
        if isinstance(who, web.Response):
            return who
        return req, fault, who

    def _listing(
        self, endpoint: str, page: Listing
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A REST listing endpoint (`/accounts`, `/zones`) in Cloudflare's paged envelope."""

        async def handle(request: web.Request) -> web.StreamResponse:
            admitted = await self._admit(request, endpoint)
            if isinstance(admitted, web.Response):
                return admitted
            req, fault, who = admitted
            return self._respond(req, page(self.traffic, who, request.query), 200, "ok", fault)

        return handle

    def _over_budget(self, credential: Credential, now: float) -> bool:
        k = self.knobs
        window = self._budget.setdefault(credential.id, deque())
        while window and window[0] <= now - k.rate_limit_window:
            window.popleft()
        if len(window) >= k.rate_limit_queries:
            return True
        window.append(now)
        return False

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._admit(request, "graphql")
        if isinstance(admitted, web.Response):
            return admitted
        req, fault, who = admitted
        now = self.clock.now()

        def fail(message: str, code: str, status: int = 200, outcome: str | None = None) -> web.Response:
            body = graphql_errors([GraphQLError(message, extensions={"code": code})], now)
            return self._respond(req, body, status, outcome or code, fault)

        try:
            payload = await request.json()
            query = payload["query"]
            if not isinstance(query, str):
                raise TypeError("query must be a string")
        except (ValueError, KeyError, TypeError):
            return fail("failed to parse the request body as a GraphQL request", "bad_request", 400)
        variables = payload.get("variables") or {}
        req.variables, req.operation_name = dict(variables), payload.get("operationName")
        try:
            document = parse(query)
        except GraphQLError as syntax:
            return self._respond(req, graphql_errors([syntax], now), 400, "bad_request", fault)
        req.account_tags, req.datasets = (
            tuple(x) for x in _scan(document, req.operation_name, req.variables)
        )
        if fault == "budget" or (self.knobs.rate_limit and self._over_budget(who, now.timestamp())):
            return fail(BUDGET_MESSAGE, "budget", self.knobs.rate_limit_http_status)
        invalid = validate(self.schema, document)
        if invalid:
            return self._respond(req, graphql_errors(invalid, now), 400, "bad_request", fault)
        if fault == "data_null":
            return fail(UNAVAILABLE_MESSAGE, "internal", outcome="data_null")
        context = RequestContext(self.traffic, self.knobs, who, now, self.fast_rows)
        result = execute(
            self.schema, document, None, context, req.variables, req.operation_name, is_awaitable=_never
        )
        assert isinstance(result, ExecutionResult)  # every resolver is synchronous
        if result.errors:
            code = (result.errors[0].extensions or {}).get("code", "bad_request")
            return self._respond(req, graphql_errors(result.errors, now), 200, str(code), fault)
        return self._respond(
            req, {"data": context.finish(result.data or {}), "errors": None}, 200, "ok", fault
        )


class SimulatorThread:
    """Runs a Simulator on its own event loop in a background thread (for synchronous code)."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cloudflare-simulator", daemon=True
        )

    def __enter__(self) -> Simulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(self._host, self._port), self._loop).result(
            timeout=10
        )
        return self.sim

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
