"""Cloudflare's REST v4 envelope for `GET /accounts` (GraphQL cannot list accounts)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from otelbridge.simulator.auth import Credential
from otelbridge.simulator.traffic import Traffic

# Cloudflare documents per_page for /accounts as 5..50, default 20.
PER_PAGE_DEFAULT, PER_PAGE_MIN, PER_PAGE_MAX = 20, 5, 50


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def accounts_page(traffic: Traffic, credential: Credential, query: Mapping[str, str]) -> dict[str, Any]:
    visible = [a for a in traffic.accounts if credential.can_see(a.tag)]
    page = max(1, _int(query, "page", 1))
    per_page = min(PER_PAGE_MAX, max(PER_PAGE_MIN, _int(query, "per_page", PER_PAGE_DEFAULT)))
    chunk = visible[(page - 1) * per_page : page * per_page]
    return {
        "success": True,
        "errors": [],
        "messages": [],
        "result": [
            {
                "id": a.tag,
                "name": a.name,
                "type": "standard",
                "settings": {"enforce_twofactor": False, "use_account_custom_ns_by_default": False},
                "created_on": "2024-01-15T09:30:00.000000Z",
            }
            for a in chunk
        ],
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(visible),
            "total_pages": math.ceil(len(visible) / per_page),
        },
    }
