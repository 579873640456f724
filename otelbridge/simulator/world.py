"""What each simulated account owns besides Workers: zones, R2 buckets, D1 databases, KV and
Durable Object namespaces, queues and Pages projects. Sizes differ on purpose (a busy shop
zone, a quiet redirect zone)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def hex_id(*parts: object) -> str:
    """A stable 32-hex-digit id (Cloudflare's zone/account/namespace tags have this form)."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


def uuid_id(*parts: object) -> str:
    h = hex_id(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Zone:
    tag: str
    name: str
    plan: str  # "enterprise", "business", "pro" or "free"
    rate: float  # HTTP requests per minute at the diurnal mean
    disabled: frozenset[str] = frozenset()  # zone datasets this zone's plan has no access to

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.name, f"www.{self.name}") if self.name.count(".") == 1 else (self.name,)


@dataclass(frozen=True)
class Bucket:
    name: str
    rate: float  # operations per minute
    objects: int  # objects stored at epoch minute 0 of the model (grows slowly)


@dataclass(frozen=True)
class Database:
    id: str  # UUID
    name: str
    rate: float  # query batches per minute


@dataclass(frozen=True)
class Namespace:
    id: str  # 32 hex digits
    name: str
    rate: float
    script: str = ""  # the Worker a Durable Object class belongs to


@dataclass(frozen=True)
class Queue:
    id: str  # 32 hex digits
    name: str
    rate: float  # messages written per minute; below 1, the share of minutes with any activity

    def active(self, minute: int) -> bool:
        """Whether anything writes to or reads from the queue in that minute."""
        return self.rate >= 1 or int(hex_id(self.id, minute)[:4], 16) < self.rate * 65536


@dataclass(frozen=True)
class Project:
    name: str  # a Pages project
    rate: float  # Functions invocations per minute

    @property
    def script(self) -> str:
        return f"pages-worker--{int(hex_id(self.name)[:6], 16) % 10_000_000}-production"


@dataclass(frozen=True)
class Resources:
    zones: tuple[Zone, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    databases: tuple[Database, ...] = ()
    kv_namespaces: tuple[Namespace, ...] = ()
    do_namespaces: tuple[Namespace, ...] = ()
    queues: tuple[Queue, ...] = ()
    projects: tuple[Project, ...] = ()


# Zone datasets a plan lacks (our choice: load balancing on business plans and up, health
# checks from pro, firewall analytics not on free).
_LB, _HC, _FW = (
    "loadBalancingRequestsAdaptiveGroups",
    "healthCheckEventsAdaptiveGroups",
    "firewallEventsAdaptiveGroups",
)
_PLAN_DISABLED = {"free": frozenset({_FW, _LB, _HC}), "pro": frozenset({_LB})}

# (name, plan, requests per minute) per account of Traffic.default; 12 zones in all, so a
# query naming every zone exceeds the 10-zone limit.
DEFAULT_ZONES: tuple[tuple[tuple[str, str, float], ...], ...] = (
    (
        ("example.com", "enterprise", 2400.0),
        ("shop.example.net", "business", 900.0),
        ("api.example.com", "enterprise", 1500.0),
        ("example.org", "pro", 120.0),
        ("acme-status.io", "pro", 30.0),
        ("acme.dev", "free", 8.0),
        ("cdn.example.com", "business", 600.0),
        ("legacy-acme.co.uk", "free", 2.0),
    ),
    (("staging.example.com", "pro", 40.0), ("example-preview.dev", "free", 5.0)),
    (("my-blog.net", "free", 60.0), ("contact.my-blog.net", "pro", 4.0)),
)


def zone(seed: int, account: int, index: int, name: str, plan: str, rate: float) -> Zone:
    return Zone(hex_id(seed, "zone", account, index), name, plan, rate, _PLAN_DISABLED.get(plan, frozenset()))


def default_resources(seed: int, account: int, scripts: tuple[str, ...]) -> Resources:
    """A deterministic set of resources for account number `account`; bigger for lower numbers."""
    specs = DEFAULT_ZONES[account] if account < len(DEFAULT_ZONES) else ()
    zones = tuple(zone(seed, account, i, *spec) for i, spec in enumerate(specs))
    scale = 1.0 / (1 + account)
    buckets = tuple(
        Bucket(name, rate * scale, objects)
        for name, rate, objects in (
            ("assets", 300.0, 120_000),
            ("user-uploads", 40.0, 2_500_000),
            ("backups", 1.0, 900),
        )
    )
    databases = tuple(
        Database(uuid_id(seed, "d1", account, name), name, rate * scale)
        for name, rate in (("orders-db", 120.0), ("sessions", 400.0), ("analytics-staging", 3.0))
    )
    kv = tuple(
        Namespace(hex_id(seed, "kv", account, name), name, rate * scale)
        for name, rate in (("CONFIG", 800.0), ("SESSIONS", 250.0), ("FEATURE_FLAGS", 20.0))
    )
    script_a, script_b = (*scripts, "do-host", "do-host")[:2]
    durable = tuple(
        Namespace(hex_id(seed, "do", account, name), name, rate * scale, script)
        for name, rate, script in (("ChatRoom", 150.0, script_a), ("RateLimiter", 600.0, script_b))
    )
    queues = tuple(
        Queue(hex_id(seed, "queue", account, name), name, rate * scale if rate >= 1 else rate)
        for name, rate in (("order-events", 200.0), ("email-outbox", 15.0), ("order-events-dlq", 0.2))
    )
    projects = tuple(Project(name, rate * scale) for name, rate in (("marketing-site", 90.0), ("docs", 25.0)))
    return Resources(zones, buckets, databases, kv, durable, queues, projects)


SCALED_PLANS = ("pro", "business", "enterprise", "pro")


def scaled_resources(seed: int, account: int, zones: int = 2) -> Resources:
    """`zones` zones per account, plans in turn (benchmarks query Workers and zones; the other
    datasets stay small)."""
    made = tuple(
        zone(seed, account, z, f"site-{account:03d}-{z}.example", SCALED_PLANS[z % len(SCALED_PLANS)], 20.0)
        for z in range(zones)
    )
    return Resources(zones=made)
