"""One attempt at each Cloudflare call, with every failure mapped to an errors.CloudflareError.

Retrying, pacing and backoff are the caller's policy (otelbridge.retry); gql's own retrying
session is not used because it retries authentication errors and ignores Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import aiohttp
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_schema, print_ast

from otelbridge.catalogue import Dataset
from otelbridge.cloudflare import errors, queries
from otelbridge.cloudflare.answers import (
    LevelRows,
    QuantileRow,
    SeriesKey,
    SumRows,
    level_rows,
    quantile_rows,
    sum_rows,
)
from otelbridge.cloudflare.credentials import Credentials

log = logging.getLogger(__name__)

AUTH_CODES = {10000, 9109, 6003, 6111, 9106, 9103}
REJECTED_MESSAGES = (
    "cannot request data older than",
    "limit must be positive",
    "query time range is too large",
    "too many nodes",
    "does not have access to the path",
)


@dataclass(frozen=True)
class DatasetLimits:
    """The dataset's limits for this account, from `settings` (defaults: Cloudflare's documented sample)."""

    enabled: bool = True
    max_duration: int = 259_200
    max_page_size: int = 10_000
    not_older_than: int = 2_678_400


@dataclass(frozen=True)
class Account:
    id: str
    name: str


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    account: str  # the owning account's tag


@dataclass
class Answer:
    sums: dict[str, SumRows]  # alias -> counter key -> vector
    quantiles: dict[str, dict[SeriesKey, QuantileRow]]  # alias -> gauge key -> row
    levels: dict[str, LevelRows]  # alias -> gauge key -> level gauge -> value
    requests: int  # GraphQL requests it took (more than one only when a page came back full)


@dataclass
class ZoneAnswers:
    """The rows of a group of zones, by zone; a zone the API left out has no answer."""

    zones: dict[str, Answer]
    requests: int  # GraphQL requests it took (more than one only when a page came back full)


_STORE = {queries.Shape.SUMS: "sums", queries.Shape.GAUGES: "quantiles", queries.Shape.LEVELS: "levels"}


class _ValidateOnceClient(Client):
    """A gql Client that validates each distinct document once.

    Documents are built once per query shape and reused (queries._document), so re-validating the
    same immutable document on every request would only burn event-loop time (~25 ms per account).
    The documents are kept referenced here, so an id is never reused by a different document.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._validated: dict[int, Any] = {}

    def validate(self, request: GraphQLRequest) -> None:
        if id(request.document) not in self._validated:
            super().validate(request)
            self._validated[id(request.document)] = request.document


class _PrintedOnce(GraphQLRequest):
    """A request whose document is printed to query text once, not on every request as gql does.

    Documents are reused (queries caches them by shape). Printing one takes milliseconds of event
    loop time and leaves hundreds of reference cycles behind: nearly all the cyclic garbage a poll
    made, and each full pass of the cyclic collector at 10^5 series holds the GIL for 0.3 s."""

    _texts: ClassVar[dict[int, tuple[DocumentNode, str]]] = {}  # by id; kept: ids stay unique

    @property
    def payload(self) -> dict[str, Any]:
        kept = self._texts.get(id(self.document))
        if kept is None:
            if len(self._texts) >= 256:  # shapes change rarely; never grow without bound
                self._texts.clear()
            kept = self._texts[id(self.document)] = (self.document, print_ast(self.document))
        out: dict[str, Any] = {"query": kept[1]}
        if self.operation_name:
            out["operationName"] = self.operation_name
        if self.variable_values:
            out["variables"] = self.variable_values
        return out


def load_schema() -> GraphQLSchema:
    sdl = resources.files("otelbridge.cloudflare").joinpath("schema.graphql").read_text(encoding="utf-8")
    # Without source locations: they would hold every token of the schema for the process's life.
    return build_schema(sdl, no_location=True)


def http_error(status: int, where: str) -> errors.CloudflareError:
    """An HTTP error status without a Cloudflare error body; `where` is "METHOD url"."""
    if status in (401, 403):
        return errors.AuthenticationFailed(f"HTTP {status} from {where}")
    if status == 429:
        return errors.RateLimited(f"HTTP 429 from {where}")
    if status >= 500:
        return errors.TransientError(f"HTTP {status} from {where}")
    hint = " (check api_url: Cloudflare's ends in /client/v4)" if status == 404 else ""
    return errors.QueryRejected(f"HTTP {status} from {where}{hint}")


def _connection_failure(exc: BaseException) -> errors.CloudflareError:
    """Name the host and port that could not be reached, and why."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for cause in chain:
        # aiohttp's TLS errors arrive wrapped, with the ssl module's error (the one that says
        # what went wrong) further down the chain.
        if isinstance(cause, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
            host = next((h for h in (getattr(c, "host", None) for c in chain) if h), "?")
            tls = next((c for c in reversed(chain) if isinstance(c, ssl.SSLError)), cause)
            return errors.ConnectionFailed(f"TLS failure talking to {host}: {type(tls).__name__}")
        if isinstance(cause, aiohttp.ClientConnectorError):
            err = cause.os_error
            reason = os.strerror(err.errno) if err.errno else err.strerror or type(err).__name__
            return errors.ConnectionFailed(f"cannot connect to {cause.host}:{cause.port}: {reason}")
    last = chain[-1]
    return errors.ConnectionFailed(f"connection failed: {type(last).__name__}")


def classify(exc: BaseException, where: str = "Cloudflare") -> errors.CloudflareError:
    """Map whatever gql, aiohttp or asyncio raised to one of our errors, keeping a safe message.
    `where` ("POST https://.../graphql") is named in errors about the HTTP exchange itself."""
    if isinstance(exc, errors.CloudflareError):
        return exc
    if isinstance(exc, TransportQueryError):
        return _classify_error_list(exc.errors or [])
    if isinstance(exc, TransportServerError):
        return http_error(exc.code or 0, where)
    if isinstance(exc, TransportProtocolError):
        return errors.MalformedResponse(f"the answer from {where} was not a GraphQL result")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return errors.Timeout(f"no answer in time from {where}")
    if isinstance(exc, TransportConnectionFailed | aiohttp.ClientError | OSError):
        return _connection_failure(exc)
    if isinstance(exc, GraphQLError):
        return errors.QueryRejected(f"query failed local validation: {exc.message}")
    if isinstance(exc, TransportError):
        return errors.TransientError(f"{type(exc).__name__} from {where}")
    return errors.MalformedResponse(f"unexpected {type(exc).__name__} from {where}")


def _classify_error_list(items: list[Any]) -> errors.CloudflareError:
    first = items[0] if items and isinstance(items[0], Mapping) else {}
    message = str(first.get("message", "unknown error"))[:300]
    code = first.get("code")
    extensions = first.get("extensions")
    ext_code = extensions.get("code") if isinstance(extensions, Mapping) else None
    if isinstance(code, int) and code in AUTH_CODES:
        return errors.AuthenticationFailed(f"{message} (code {code})")
    if ext_code == "budget" or "rate limiter budget" in message:
        return errors.RateLimited(message)
    if ext_code == "authz" or "not authorized" in message:
        return errors.NotAuthorized(message)
    if any(m in message for m in REJECTED_MESSAGES):
        return errors.QueryRejected(message)
    return errors.TransientError(message)


class CloudflareClient:
    def __init__(
        self,
        api_url: str,
        credentials: Credentials,
        quantiles: tuple[str, ...],
        *,
        timeout: float = 30.0,
        account_based_rate_limit: bool = False,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._quantiles = quantiles
        self._timeout = timeout
        self._headers = credentials.headers()
        if account_based_rate_limit:
            self._headers["X-Rate-Limit-Type"] = "account-based"
        self._schema = load_schema()
        self._gql: _ValidateOnceClient | None = None
        self._session: Any = None

    async def __aenter__(self) -> CloudflareClient:
        transport = AIOHTTPTransport(
            url=f"{self._api_url}/graphql", headers=self._headers, timeout=int(self._timeout) + 1
        )
        self._gql = _ValidateOnceClient(
            schema=self._schema, transport=transport, execute_timeout=self._timeout
        )
        self._session = await self._gql.connect_async(reconnecting=False)  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._gql is not None:
            await self._gql.close_async()  # type: ignore[no-untyped-call]
            self._gql = None

    async def _execute(self, document: Any, variables: dict[str, object]) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("CloudflareClient used outside `async with`")
        try:
            result = await self._session.execute(_PrintedOnce(document, variable_values=variables))
        except Exception as exc:  # every failure becomes one of ours, with a message free of secrets
            raise classify(exc, f"POST {self._api_url}/graphql") from None
        if not isinstance(result, dict):
            raise errors.MalformedResponse("data is not an object")
        return result

    async def _account_node(self, account: str, document: Any, variables: dict[str, object]) -> Any:
        data = await self._execute(document, variables)
        viewer = data.get("viewer")
        nodes = viewer.get("accounts") if isinstance(viewer, Mapping) else None
        if not isinstance(nodes, list):
            raise errors.MalformedResponse("viewer.accounts missing")
        if not nodes:
            raise errors.NotAuthorized(f"account {account} not visible to this credential")
        if len(nodes) != 1 or not isinstance(nodes[0], Mapping):
            raise errors.MalformedResponse("expected exactly one account node")
        return nodes[0]

    async def settings(self, account: str, datasets: tuple[Dataset, ...]) -> dict[str, DatasetLimits]:
        """Each dataset's limits for this account (by dataset name), in one request."""
        document = queries.settings_query(tuple(d.graphql_node for d in datasets))
        node = await self._account_node(account, document, {"account": account})
        return _limits(node, datasets)

    async def zone_settings(
        self, zones: tuple[str, ...], datasets: tuple[Dataset, ...]
    ) -> dict[str, dict[str, DatasetLimits]]:
        """Each dataset's limits for each zone (what its plan offers), in one request. Zones the
        credential cannot see are left out of the answer."""
        document = queries.zone_settings_query(tuple(d.graphql_node for d in datasets))
        nodes = _zone_nodes(await self._execute(document, {"zones": list(zones)}), "zones", zones)
        return {tag: _limits(node, datasets) for tag, node in nodes.items()}

    async def fetch(
        self, account: str, requests: tuple[queries.AliasRequest, ...], limits: dict[str, int]
    ) -> Answer:
        """Fetch every alias in one request, following full pages (by each dataset's page key) with
        more requests until each alias is complete. `limits`: the page size by dataset."""
        answer = Answer(sums={}, quantiles={}, levels={}, requests=0)
        pending = requests
        while pending:
            document, variables = queries.account_request(account, pending, limits, self._quantiles)
            node = await self._account_node(account, document, variables)
            answer.requests += 1
            taken = (self._take(node, r, limits[r.dataset.dataset], answer) for r in pending)
            pending = tuple(p for p in taken if p)
        return answer

    async def fetch_zones(
        self,
        wanted: dict[str, tuple[queries.AliasRequest, ...]],
        limits: dict[str, dict[str, int]],
    ) -> ZoneAnswers:
        """Fetch every zone's aliases in one request (zones asking for the same ranges share one
        `zones` field), following full pages with more requests. `wanted` should hold at most 10
        zones: Cloudflare refuses a request naming more. `limits`: page size by zone and dataset."""
        out = ZoneAnswers(zones={}, requests=0)
        pending = {tag: requests for tag, requests in wanted.items() if requests}
        while pending:
            fields = queries.zone_fields(pending, limits)
            document, variables = queries.zone_request(fields, self._quantiles)
            data = await self._execute(document, variables)
            out.requests += 1
            following: dict[str, tuple[queries.AliasRequest, ...]] = {}
            for i, f in enumerate(fields):
                for tag, node in _zone_nodes(data, f"z{i}", f.zones).items():
                    answer = out.zones.setdefault(tag, Answer(sums={}, quantiles={}, levels={}, requests=0))
                    taken = (self._take(node, r, limits[tag][r.dataset.dataset], answer) for r in f.requests)
                    following[tag] = tuple(p for p in taken if p)
            pending = {tag: requests for tag, requests in following.items() if requests}
        return out

    def _take(
        self, node: Mapping[str, Any], request: queries.AliasRequest, limit: int, answer: Answer
    ) -> queries.AliasRequest | None:
        """Store one alias's rows; return the request for its next page when this one was full."""
        raw, alias, dataset = node.get(request.alias), request.alias, request.dataset
        fields = queries.key_fields(dataset, request.shape)
        rows: dict[SeriesKey, Any]
        if request.shape is queries.Shape.SUMS:
            rows = sum_rows(raw, alias, dataset, fields)
        elif request.shape is queries.Shape.GAUGES:
            rows = quantile_rows(raw, alias, dataset, fields, self._quantiles)
        else:
            rows = level_rows(raw, alias, dataset, fields)
        page = fields.index(dataset.dimension(dataset.page_key).field)
        last = max((key[page] for key in rows), default=None)
        full = isinstance(raw, list) and len(raw) >= limit
        if full:
            # The last page key value may continue on the next page: ask for it again from there.
            if last is None or last == request.after:
                raise errors.QueryRejected(
                    f"{alias}: one {dataset.page_key} has more groups than a page holds"
                )
            rows = {k: v for k, v in rows.items() if k[page] != last}
        store: dict[str, dict[SeriesKey, Any]] = getattr(answer, _STORE[request.shape])
        store.setdefault(alias, {}).update(rows)
        return request.page(last) if full and last is not None else None

    async def accounts(self) -> list[Account]:
        """Every account the credential can see, over REST (GraphQL cannot list accounts)."""
        items = await self._listing("accounts", {})
        return [Account(id=str(item["id"]), name=str(item.get("name", ""))) for item in items]

    async def zones(self, account: str) -> list[Zone]:
        """The account's zones over REST (their names are not in GraphQL), every page."""
        items = await self._listing("zones", {"account.id": account})
        try:
            return [Zone(id=str(i["id"]), name=str(i["name"]), account=account) for i in items]
        except (KeyError, TypeError) as exc:
            raise errors.MalformedResponse(f"GET {self._api_url}/zones: a zone without {exc}") from None

    async def _listing(self, path: str, params: dict[str, str]) -> list[Mapping[str, Any]]:
        """Every item of a paged REST listing, in Cloudflare's envelope."""
        found: list[Mapping[str, Any]] = []
        page = 1
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session:
            where = f"GET {self._api_url}/{path}"
            while True:
                try:
                    async with session.get(
                        f"{self._api_url}/{path}", params={**params, "page": page, "per_page": 50}
                    ) as resp:
                        status, text = resp.status, await resp.text(errors="replace")
                except Exception as exc:
                    raise classify(exc, where) from None
                try:
                    body = json.loads(text)
                except ValueError:
                    if status >= 400:
                        raise http_error(status, where) from None
                    raise errors.MalformedResponse(f"{where}: HTTP {status}, not JSON") from None
                if not isinstance(body, Mapping):
                    raise errors.MalformedResponse(f"{where}: HTTP {status}, not a JSON object")
                if not body.get("success"):
                    raise _classify_error_list(list(body.get("errors") or []))
                result = body.get("result") or []
                if not isinstance(result, list) or not all(isinstance(i, Mapping) for i in result):
                    raise errors.MalformedResponse(f"{where}: result is not a list of objects")
                found.extend(result)
                info = body.get("result_info") or {}
                if page >= int(info.get("total_pages", 1)):
                    return found
                page += 1


def _limits(node: Mapping[str, Any], datasets: tuple[Dataset, ...]) -> dict[str, DatasetLimits]:
    """Each dataset's limits from an account's or a zone's `settings`."""
    out = {}
    for dataset in datasets:
        try:
            s = node["settings"][dataset.graphql_node]
            out[dataset.dataset] = DatasetLimits(
                enabled=bool(s["enabled"]),
                max_duration=int(s["maxDuration"]),
                max_page_size=int(s["maxPageSize"]),
                not_older_than=int(s["notOlderThan"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.MalformedResponse(f"settings.{dataset.graphql_node}: {type(exc).__name__}") from None
    return out


def _zone_nodes(data: Mapping[str, Any], field: str, zones: tuple[str, ...]) -> dict[str, Mapping[str, Any]]:
    """The zone nodes under `viewer.<field>` by zone tag; only zones asked for, each at most once."""
    viewer = data.get("viewer")
    nodes = viewer.get(field) if isinstance(viewer, Mapping) else None
    if not isinstance(nodes, list) or not all(isinstance(n, Mapping) for n in nodes):
        raise errors.MalformedResponse(f"viewer.{field} missing")
    out: dict[str, Mapping[str, Any]] = {}
    for node in nodes:
        tag = node.get("zoneTag")
        if not isinstance(tag, str) or tag not in zones or tag in out:
            raise errors.MalformedResponse(f"viewer.{field}: unexpected zone {tag!r}")
        out[tag] = node
    return out
