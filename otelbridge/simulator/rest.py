"""Cloudflare's REST v4 envelope for `GET /accounts` and `GET /zones` (GraphQL cannot list
accounts; zones can be listed either way)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from otelbridge.simulator.auth import Credential
from otelbridge.simulator.traffic import Traffic

# Cloudflare documents per_page as 5..50, default 20, for both /accounts and /zones.
PER_PAGE_DEFAULT, PER_PAGE_MIN, PER_PAGE_MAX = 20, 5, 50
_CREATED = "2024-01-15T09:30:00.000000Z"
_PLAN_NAMES = {"free": "Free Website", "pro": "Pro Website", "business": "Business Website"}

T = TypeVar("T")


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def _paged(
    items: Sequence[T], query: Mapping[str, str], render: Callable[[T], dict[str, Any]]
) -> dict[str, Any]:
    page = max(1, _int(query, "page", 1))
    per_page = min(PER_PAGE_MAX, max(PER_PAGE_MIN, _int(query, "per_page", PER_PAGE_DEFAULT)))
    chunk = items[(page - 1) * per_page : page * per_page]
    return {
        "success": True,
        "errors": [],
        "messages": [],
        "result": [render(item) for item in chunk],
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": math.ceil(len(items) / per_page),
        },
    }


def accounts_page(traffic: Traffic, credential: Credential, query: Mapping[str, str]) -> dict[str, Any]:
    visible = [a for a in traffic.accounts if credential.can_see(a.tag)]
    return _paged(
        visible,
        query,
        lambda a: {
            "id": a.tag,
            "name": a.name,
            "type": "standard",
            "settings": {"enforce_twofactor": False, "use_account_custom_ns_by_default": False},
            "created_on": _CREATED,
        },
    )


def zones_page(traffic: Traffic, credential: Credential, query: Mapping[str, str]) -> dict[str, Any]:
    """Zones the credential can see, by name; `account.id` and `name` filter them."""
    wanted_account, wanted_name = query.get("account.id"), query.get("name")
    rows = []
    for account in traffic.accounts:
        if not credential.can_see(account.tag) or wanted_account not in (None, account.tag):
            continue
        for zone in traffic.analytics.resources[account.tag].zones:
            if wanted_name in (None, zone.name) and zone.tag in traffic.zones(account):
                rows.append((account, zone))
    rows.sort(key=lambda row: row[1].name)
    return _paged(
        rows,
        query,
        lambda row: {
            "id": row[1].tag,
            "name": row[1].name,
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "account": {"id": row[0].tag, "name": row[0].name},
            "plan": {
                "id": row[1].tag[:16] + row[1].plan.ljust(16, "0")[:16],
                "name": _PLAN_NAMES.get(row[1].plan, "Enterprise Website"),
                "legacy_id": row[1].plan,
            },
            "created_on": _CREATED,
            "modified_on": _CREATED,
            "activated_on": _CREATED,
        },
    )
