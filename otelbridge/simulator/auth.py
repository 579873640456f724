"""Credentials and Cloudflare's authentication failures (REST envelope errors)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TOKEN = "sim-token"
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")  # RFC 6750 token68


@dataclass(frozen=True)
class Credential:
    """An API token or a legacy email + global key; `accounts=None` sees every account."""

    id: str  # what the query log records, never the secret
    token: str | None = None
    email: str | None = None
    key: str | None = None
    accounts: frozenset[str] | None = None

    def can_see(self, account_tag: str) -> bool:
        return self.accounts is None or account_tag in self.accounts


DEFAULT_CREDENTIALS = (Credential("sim", token=DEFAULT_TOKEN),)


@dataclass(frozen=True)
class AuthFailure:
    status: int
    code: int
    message: str
    chain: tuple[tuple[int, str], ...] = ()

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.chain:
            error["error_chain"] = [{"code": c, "message": m} for c, m in self.chain]
        return envelope_error([error])


def envelope_error(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"success": False, "errors": errors, "messages": [], "result": None}


AUTH_ERROR = AuthFailure(403, 10000, "Authentication error")
INVALID_TOKEN = AuthFailure(403, 9109, "Invalid access token")


def _bad_header(code: int, detail: str) -> AuthFailure:
    return AuthFailure(400, 6003, "Invalid request headers", ((code, detail),))


def authenticate(headers: Mapping[str, str], credentials: Sequence[Credential]) -> Credential | AuthFailure:
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
            return _bad_header(6111, "Invalid format for Authorization header")
        for c in credentials:
            if c.token is not None and c.token == token:
                return c
        return INVALID_TOKEN
    email, key = headers.get("X-Auth-Email"), headers.get("X-Auth-Key")
    if email is None and key is None:
        return AUTH_ERROR
    if not email or "@" not in email:
        return _bad_header(6102, "No or invalid X-Auth-Email header")
    if not key:
        return _bad_header(6103, "Invalid format for X-Auth-Key header")
    for c in credentials:
        if c.email == email and c.key == key:
            return c
    return AUTH_ERROR
