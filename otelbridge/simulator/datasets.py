"""The zone and developer-platform datasets: what each one groups by, what it aggregates, and
the synthetic records behind it.

A record stands for `weight` identical events (requests, operations, query batches) of one
minute with the same dimension values; its `values` are per-event quantities, so a group's
`sum.x` is the sum of weight * x and `count` the sum of weights. Level datasets (R2 storage)
have one snapshot record per resource and minute instead, aggregated with max.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from otelbridge.simulator.world import Resources, hex_id

Value = str | int
# dimensions typed uint8/uint16 in the schema (the others are strings)
INT_DIMENSIONS = frozenset(
    {"edgeResponseStatus", "responseStatusCode", "originResponseStatus", "responseCached"}
)


class Record(NamedTuple):
    minute: int  # epoch minute
    second: int
    dims: tuple[Value, ...]  # in the order of DatasetSpec.dimensions
    weight: int
    sampled_weight: int  # estimate under adaptive sampling: a multiple of `interval`, maybe 0
    interval: int
    lag: float  # arrival after the minute ends, as a fraction of the ingestion delay
    values: tuple[int, ...]  # in the order of DatasetSpec.values


# (second, dimension values, weight, per-event values) as a generator draws them
Draw = tuple[int, tuple[Value, ...], int, tuple[int, ...]]
# (rng, the account's resources, zone index (zone datasets), epoch minute, diurnal factor)
Generator = Callable[[random.Random, Resources, int, int, float], list[Draw]]


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the field under `account` or `zone`
    scope: Literal["account", "zone"]
    row_type: str
    dimensions: tuple[str, ...]  # non-time dimensions, in record order
    time_dimensions: tuple[str, ...]
    values: tuple[str, ...]  # per-event quantities, in record order
    sums: tuple[tuple[str, str], ...] = ()  # (sum field, value) pairs
    maxes: tuple[str, ...] = ()  # max fields (level datasets), each a value
    float_sums: dict[str, int] = field(default_factory=dict)  # float64 sums: value units per 1
    averages: tuple[str, ...] = ()  # integer avg fields: weighted mean of the values, rounded down
    count: bool = False
    sample_interval: bool = False  # has avg { sampleInterval }
    level: bool = False
    generate: Generator | None = None

    def index(self, value: str) -> int:
        return self.values.index(value)


_T_SECOND = (
    "date",
    "datetime",
    "datetimeMinute",
    "datetimeFiveMinutes",
    "datetimeFifteenMinutes",
    "datetimeHour",
)
_T_SECOND_6H = (*_T_SECOND, "datetimeSixHours")
_T_SHORT = ("date", "datetime", "datetimeHour", "datetimeMinute")
_T_NO_DATETIME = (
    "date",
    "datetimeMinute",
    "datetimeFiveMinutes",
    "datetimeFifteenMinutes",
    "datetimeHour",
    "datetimeSixHours",
)

COUNTRIES = ("US", "DE", "GB", "JP", "BR", "IN", "FR", "NL", "SG", "AU")
COLOS = ("AMS", "FRA", "LHR", "CDG", "IAD", "SJC", "NRT", "SIN", "GRU", "SYD")
REGIONS = ("WNAM", "ENAM", "WEUR", "EEUR", "APAC", "OC")


def pick(rng: random.Random, table: Sequence[tuple[Value, float]]) -> Value:
    """A value drawn by weight from (value, weight) pairs."""
    x = rng.random() * sum(w for _, w in table)
    for value, w in table:
        x -= w
        if x < 0:
            return value
    return table[-1][0]


def split(rng: random.Random, lam: float, pieces: int) -> list[int]:
    """About `lam` events (Poisson-ish rounding) cut into at most `pieces` records."""
    n = int(lam + rng.random())
    if n <= 0:
        return []
    k = min(n, 1 + int(pieces * rng.random()))
    weights = [n // k] * k
    weights[int(k * rng.random())] += n % k
    return weights


def _lognormal(rng: random.Random, median: float, sigma: float = 0.8) -> int:
    return max(0, int(median * rng.lognormvariate(0.0, sigma)))


_HTTP_STATUS = (
    (200, 80.0),
    (304, 6.0),
    (404, 5.0),
    (301, 3.0),
    (403, 2.0),
    (206, 1.5),
    (500, 1.0),
    (502, 0.5),
    (503, 0.5),
    (429, 0.5),
)
_CACHE = (
    ("hit", 45.0),
    ("dynamic", 25.0),
    ("miss", 15.0),
    ("revalidated", 5.0),
    ("expired", 5.0),
    ("none", 5.0),
)
_METHOD = (("GET", 85.0), ("POST", 11.0), ("HEAD", 3.0), ("PUT", 1.0))


def _http(rng: random.Random, res: Resources, scope: int, _minute: int, diurnal: float) -> list[Draw]:
    zone = res.zones[scope]
    out: list[Draw] = []
    for weight in split(rng, zone.rate * diurnal * (0.8 + 0.4 * rng.random()), 24):
        status = int(pick(rng, _HTTP_STATUS))
        cache = "dynamic" if status >= 500 else str(pick(rng, _CACHE))
        dims = (
            cache,
            COUNTRIES[int(len(COUNTRIES) * rng.random() ** 2)],
            zone.hosts[int(len(zone.hosts) * rng.random())],
            str(pick(rng, _METHOD)),
            COLOS[int(len(COLOS) * rng.random())],
            status,
        )
        body = 0 if status in (304, 301) else _lognormal(rng, 14000, 1.2)
        visit = int(status == 200 and dims[3] == "GET" and rng.random() < 0.3)  # a page view from elsewhere
        out.append(
            (int(60 * rng.random()), dims, weight, (400 + int(1200 * rng.random()), body + 350, visit))
        )
    return out


_FW_ACTION = (
    ("block", 40.0),
    ("managed_challenge", 25.0),
    ("log", 20.0),
    ("skip", 10.0),
    ("jschallenge", 5.0),
)
_FW_SOURCE = (
    ("firewallManaged", 45.0),
    ("firewallCustom", 30.0),
    ("ratelimit", 15.0),
    ("securitylevel", 10.0),
)


def _firewall(rng: random.Random, res: Resources, scope: int, _minute: int, diurnal: float) -> list[Draw]:
    zone = res.zones[scope]
    out: list[Draw] = []
    for weight in split(rng, zone.rate * 0.03 * diurnal * (0.5 + rng.random()), 8):
        action = str(pick(rng, _FW_ACTION))
        source = str(pick(rng, _FW_SOURCE))
        status = {"block": 403, "managed_challenge": 403, "jschallenge": 403}.get(action, 200)
        if source == "ratelimit" and action == "block":
            status = 429
        dims = (
            action,
            source,
            COUNTRIES[int(len(COUNTRIES) * rng.random())],
            zone.hosts[int(len(zone.hosts) * rng.random())],
            status,
            f"{zone.tag[:8]}{int(4 * rng.random()):024x}",
        )
        out.append((int(60 * rng.random()), dims, weight, ()))
    return out


_R2_ACTIONS = (
    ("GetObject", 60.0),
    ("PutObject", 15.0),
    ("HeadObject", 12.0),
    ("ListObjects", 8.0),
    ("DeleteObject", 5.0),
)


def _r2_operations(
    rng: random.Random, res: Resources, _scope: int, _minute: int, diurnal: float
) -> list[Draw]:
    out: list[Draw] = []
    for bucket in res.buckets:
        for weight in split(rng, bucket.rate * diurnal * (0.8 + 0.4 * rng.random()), 6):
            action = str(pick(rng, _R2_ACTIONS))
            code = int(pick(rng, ((200, 96.0), (404, 3.0), (500, 0.4), (503, 0.6))))
            status = "success" if code == 200 else "userError" if code < 500 else "internalError"
            size = _lognormal(rng, 250_000, 1.5) if action in ("GetObject", "PutObject") else 0
            sent = size if action == "GetObject" and code == 200 else 300
            storage = "InfrequentAccess" if bucket.name == "backups" else "Standard"
            region = REGIONS[int(len(REGIONS) * rng.random())]
            out.append(
                (
                    int(60 * rng.random()),
                    (status, action, bucket.name, region, code, storage),
                    weight,
                    (sent, size),
                )
            )
    return out


_GROWTH_FROM = 29_400_000  # epoch minute in November 2025


def _r2_storage(_rng: random.Random, res: Resources, _scope: int, minute: int, _diurnal: float) -> list[Draw]:
    out: list[Draw] = []
    for i, bucket in enumerate(res.buckets):
        # one more object every 10 * (1 + i) minutes since late 2025: stepwise, never shrinking
        objects = bucket.objects + max(0, minute - _GROWTH_FROM) // (10 * (1 + i))
        storage = "InfrequentAccess" if bucket.name == "backups" else "Standard"
        out.append((0, (bucket.name, storage), 1, (objects * 180, objects, objects * 48_000, objects // 200)))
    return out


def _d1(rng: random.Random, res: Resources, _scope: int, _minute: int, diurnal: float) -> list[Draw]:
    out: list[Draw] = []
    for db in res.databases:
        for weight in split(rng, db.rate * diurnal * (0.8 + 0.4 * rng.random()), 6):
            write = rng.random() < 0.2
            role = "primary" if write or rng.random() < 0.6 else "replica"
            region = "ENAM" if role == "primary" else REGIONS[int(len(REGIONS) * rng.random())]
            reads, writes = (0, 1 + int(2 * rng.random())) if write else (1 + int(3 * rng.random()), 0)
            rows_read = reads * (1 + _lognormal(rng, 20, 1.5))
            rows_written = writes * (1 + int(4 * rng.random()))
            values = (_lognormal(rng, 2000, 1.0) + 64, reads, rows_read, rows_written, writes)
            out.append((int(60 * rng.random()), (db.id, role, region), weight, values))
    return out


_KV = (
    ("read", "hot_read", 200, 70.0),
    ("read", "cold_read", 200, 12.0),
    ("read", "not_found", 404, 8.0),
    ("write", "uploaded", 200, 6.0),
    ("delete", "deleted", 200, 2.0),
    ("list", "hot_read", 200, 1.8),
    ("read", "error", 500, 0.2),
)


def _kv(rng: random.Random, res: Resources, _scope: int, _minute: int, diurnal: float) -> list[Draw]:
    out: list[Draw] = []
    for ns in res.kv_namespaces:
        for weight in split(rng, ns.rate * diurnal * (0.8 + 0.4 * rng.random()), 6):
            action, result, code, _ = _KV[int(pick(rng, [(i, k[3]) for i, k in enumerate(_KV)]))]
            size = _lognormal(rng, 1800, 1.0) if result in ("hot_read", "cold_read", "uploaded") else 0
            out.append((int(60 * rng.random()), (action, ns.id, code, result), weight, (size, 1)))
    return out


_DO_STATUS = (
    ("success", 97.0),
    ("clientDisconnected", 1.5),
    ("scriptThrewException", 1.0),
    ("exceededResources", 0.5),
)


def _durable_objects(
    rng: random.Random, res: Resources, _scope: int, _minute: int, diurnal: float
) -> list[Draw]:
    out: list[Draw] = []
    for ns in res.do_namespaces:
        for weight in split(rng, ns.rate * diurnal * (0.8 + 0.4 * rng.random()), 6):
            status = str(pick(rng, _DO_STATUS))
            values = (int(status != "success"), 1, _lognormal(rng, 900, 1.0), _lognormal(rng, 4000, 1.0) + 50)
            out.append((int(60 * rng.random()), ("production", ns.id, ns.script, status), weight, values))
    return out


_QUEUE_OPS = (
    ("WriteMessage", "none", "none", 1.0),
    ("ReadMessage", "worker", "none", 1.02),  # retries read some messages twice
    ("DeleteMessage", "worker", "success", 0.97),
    ("DeleteMessage", "worker", "fail", 0.02),
    ("DeleteMessage", "worker", "dlq", 0.01),
)


def _queue_operations(
    rng: random.Random, res: Resources, _scope: int, minute: int, diurnal: float
) -> list[Draw]:
    out: list[Draw] = []
    for queue in res.queues:
        if not queue.active(minute):
            continue
        for action, consumer, outcome, share in _QUEUE_OPS:
            lam = max(1.0, queue.rate) * share * diurnal * (0.8 + 0.4 * rng.random())
            for weight in split(rng, lam, 3):
                size = 200 + _lognormal(rng, 1500, 1.0)
                values = (1 + size // 65536, size, size)  # one billable operation per 64 KB
                out.append((int(60 * rng.random()), (action, consumer, outcome, queue.id), weight, values))
    return out


def _queue_backlog(
    _rng: random.Random, res: Resources, _scope: int, minute: int, _diurnal: float
) -> list[Draw]:
    out: list[Draw] = []
    for queue in res.queues:
        if not queue.active(minute):  # Cloudflare: idle queues return no backlog data
            continue
        wave = math.sin(2 * math.pi * (minute % 90) / 90)  # consumers fall behind and catch up
        messages = max(0, int(queue.rate * (2 + 2 * wave)) + int(hex_id(queue.id, minute)[:2], 16) % 7)
        out.append((0, (queue.id,), 1, (messages * 1700, messages)))
    return out


_PAGES_STATUS = (
    ("success", 97.0),
    ("clientDisconnected", 1.0),
    ("scriptThrewException", 1.5),
    ("exceededResources", 0.5),
)


def _pages_functions(
    rng: random.Random, res: Resources, _scope: int, _minute: int, diurnal: float
) -> list[Draw]:
    out: list[Draw] = []
    for project in res.projects:
        for weight in split(rng, project.rate * diurnal * (0.8 + 0.4 * rng.random()), 6):
            status = str(pick(rng, _PAGES_STATUS))
            wall = _lognormal(rng, 12_000, 0.9) + 100  # µs
            duration = max(1, round(wall * 0.128 * 65536 / 1e6))  # 128 MB for `wall` µs, in 2**-16 GB*s
            values = (
                int(status == "clientDisconnected"),
                duration,
                int(status != "success"),
                1,
                _lognormal(rng, 20_000, 1.0),
                int(3 * rng.random()),
                wall,
            )
            out.append((int(60 * rng.random()), (project.script, status, "standard"), weight, values))
    return out


_LB_REGIONS = ("WNAM", "ENAM", "WEU", "EEU", "SEAS", "OC")
_LB_POOLS = (("us-east-pool", ("origin-a", "origin-b")), ("eu-west-pool", ("origin-c", "origin-d")))


def _load_balancing(
    rng: random.Random, res: Resources, scope: int, _minute: int, diurnal: float
) -> list[Draw]:
    zone = res.zones[scope]
    if "loadBalancingRequestsAdaptiveGroups" in zone.disabled:
        return []
    out: list[Draw] = []
    for weight in split(rng, zone.rate * 0.6 * diurnal * (0.8 + 0.4 * rng.random()), 12):
        region = _LB_REGIONS[int(len(_LB_REGIONS) * rng.random())]
        pool, origins = _LB_POOLS[0 if region in ("WNAM", "ENAM", "SEAS", "OC") else 1]
        error = "none" if rng.random() < 0.995 else "no_healthy_pools"
        dims = (
            COLOS[int(len(COLOS) * rng.random())],
            error,
            zone.hosts[-1],
            region,
            origins[int(2 * rng.random())],
            pool,
            "geo",
        )
        out.append((int(60 * rng.random()), dims, weight, ()))
    return out


_HC_REGIONS = ("WNAM", "ENAM", "WEU", "EEU", "SEAS", "OC")


def _health_checks(
    rng: random.Random, res: Resources, scope: int, minute: int, _diurnal: float
) -> list[Draw]:
    """Each check probes its origin once a minute from each region."""
    zone = res.zones[scope]
    if "healthCheckEventsAdaptiveGroups" in zone.disabled:
        return []
    checks = ("origin-http",) if zone.plan == "pro" else ("origin-http", "api-tls")
    out: list[Draw] = []
    for check in checks:
        outage = int(hex_id(zone.tag, check, minute // 30)[:2], 16) < 8  # some half hours go bad
        for region in _HC_REGIONS:
            failed = outage and rng.random() < 0.7
            dims = (
                "Response timeout" if failed else "",
                check,
                "unhealthy" if failed else "healthy",
                0 if failed else 200,
                region,
            )
            rtt = 5000 if failed else 20 + _lognormal(rng, 60, 0.6)
            out.append((int(60 * rng.random()), dims, 1, (rtt,)))
    return out


_DNS_TYPES = (("A", 55.0), ("AAAA", 30.0), ("HTTPS", 7.0), ("TXT", 5.0), ("MX", 3.0))


def _dns(rng: random.Random, res: Resources, scope: int, _minute: int, diurnal: float) -> list[Draw]:
    zone = res.zones[scope]
    names = (*zone.hosts, f"_dmarc.{zone.name}", f"mail.{zone.name}")
    out: list[Draw] = []
    for weight in split(rng, (5 + zone.rate * 0.3) * diurnal * (0.8 + 0.4 * rng.random()), 10):
        qtype = str(pick(rng, _DNS_TYPES))
        name = (
            names[-2]
            if qtype == "TXT"
            else names[-1]
            if qtype == "MX"
            else names[int(len(zone.hosts) * rng.random())]
        )
        code = "NXDOMAIN" if rng.random() < 0.04 else "NOERROR"
        protocol = str(pick(rng, (("udp", 92.0), ("tcp", 3.0), ("https", 5.0))))
        cached = int(rng.random() < 0.6)
        dims = (COLOS[int(len(COLOS) * rng.random())], protocol, name, qtype, cached, code)
        out.append((int(60 * rng.random()), dims, weight, ()))
    return out


_PAGES_VALUES = (
    "clientDisconnects",
    "duration",
    "errors",
    "requests",
    "responseBodySize",
    "subrequests",
    "wallTime",
)

SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "httpRequestsAdaptiveGroups",
            "zone",
            "ZoneHttpRequestsAdaptiveGroups",
            (
                "cacheStatus",
                "clientCountryName",
                "clientRequestHTTPHost",
                "clientRequestHTTPMethodName",
                "coloCode",
                "edgeResponseStatus",
            ),
            _T_SECOND,
            ("edgeRequestBytes", "edgeResponseBytes", "visits"),
            sums=(
                ("edgeRequestBytes", "edgeRequestBytes"),
                ("edgeResponseBytes", "edgeResponseBytes"),
                ("visits", "visits"),
            ),
            count=True,
            sample_interval=True,
            generate=_http,
        ),
        DatasetSpec(
            "firewallEventsAdaptiveGroups",
            "zone",
            "ZoneFirewallEventsAdaptiveGroups",
            (
                "action",
                "source",
                "clientCountryName",
                "clientRequestHTTPHost",
                "edgeResponseStatus",
                "ruleId",
            ),
            _T_SECOND,
            (),
            count=True,
            sample_interval=True,
            generate=_firewall,
        ),
        DatasetSpec(
            "loadBalancingRequestsAdaptiveGroups",
            "zone",
            "ZoneLoadBalancingRequestsAdaptiveGroups",
            (
                "coloCode",
                "errorType",
                "lbName",
                "region",
                "selectedOriginName",
                "selectedPoolName",
                "steeringPolicy",
            ),
            ("datetime", "datetimeMinute", "datetimeFiveMinutes", "datetimeFifteenMinutes", "datetimeHour"),
            (),
            count=True,
            sample_interval=True,
            generate=_load_balancing,
        ),
        DatasetSpec(
            "healthCheckEventsAdaptiveGroups",
            "zone",
            "ZoneHealthCheckEventsAdaptiveGroups",
            ("failureReason", "healthCheckName", "healthStatus", "originResponseStatus", "region"),
            _T_SECOND,
            ("rttMs",),
            averages=("rttMs",),
            count=True,
            sample_interval=True,
            generate=_health_checks,
        ),
        DatasetSpec(
            "dnsAnalyticsAdaptiveGroups",
            "zone",
            "ZoneDnsAnalyticsAdaptiveGroups",
            ("coloName", "protocol", "queryName", "queryType", "responseCached", "responseCode"),
            _T_SECOND,
            (),
            count=True,
            sample_interval=True,
            generate=_dns,
        ),
        DatasetSpec(
            "r2OperationsAdaptiveGroups",
            "account",
            "AccountR2OperationsAdaptiveGroups",
            (
                "actionStatus",
                "actionType",
                "bucketName",
                "eyeballRegion",
                "responseStatusCode",
                "storageClass",
            ),
            _T_SHORT,
            ("responseBytes", "responseObjectSize"),
            sums=(
                ("requests", ""),
                ("responseBytes", "responseBytes"),
                ("responseObjectSize", "responseObjectSize"),
            ),
            generate=_r2_operations,
        ),
        DatasetSpec(
            "r2StorageAdaptiveGroups",
            "account",
            "AccountR2StorageAdaptiveGroups",
            ("bucketName", "storageClass"),
            _T_SHORT,
            ("metadataSize", "objectCount", "payloadSize", "uploadCount"),
            maxes=("metadataSize", "objectCount", "payloadSize", "uploadCount"),
            level=True,
            generate=_r2_storage,
        ),
        DatasetSpec(
            "d1AnalyticsAdaptiveGroups",
            "account",
            "AccountD1AnalyticsAdaptiveGroups",
            ("databaseId", "databaseRole", "servedByRegion"),
            _T_NO_DATETIME,
            ("queryBatchResponseBytes", "readQueries", "rowsRead", "rowsWritten", "writeQueries"),
            sums=tuple(
                (v, v)
                for v in ("queryBatchResponseBytes", "readQueries", "rowsRead", "rowsWritten", "writeQueries")
            ),
            float_sums={"queryBatchResponseBytes": 1},
            count=True,
            sample_interval=True,
            generate=_d1,
        ),
        DatasetSpec(
            "kvOperationsAdaptiveGroups",
            "account",
            "AccountKvOperationsAdaptiveGroups",
            ("actionType", "namespaceId", "responseStatusCode", "result"),
            _T_SHORT,
            ("objectBytes", "requests"),
            sums=(("objectBytes", "objectBytes"), ("requests", "requests")),
            count=True,
            sample_interval=True,
            generate=_kv,
        ),
        DatasetSpec(
            "durableObjectsInvocationsAdaptiveGroups",
            "account",
            "AccountDurableObjectsInvocationsAdaptiveGroups",
            ("environmentName", "namespaceId", "scriptName", "status"),
            (*_T_SECOND_6H,),
            ("errors", "requests", "responseBodySize", "wallTime"),
            sums=tuple((v, v) for v in ("errors", "requests", "responseBodySize", "wallTime")),
            sample_interval=True,
            generate=_durable_objects,
        ),
        DatasetSpec(
            "queueMessageOperationsAdaptiveGroups",
            "account",
            "AccountQueueMessageOperationsAdaptiveGroups",
            ("actionType", "consumerType", "outcome", "queueId"),
            _T_SECOND_6H,
            ("billableOperations", "bytes", "messageSize"),
            sums=(("billableOperations", "billableOperations"), ("bytes", "bytes")),
            maxes=("messageSize",),
            count=True,
            sample_interval=True,
            generate=_queue_operations,
        ),
        DatasetSpec(
            "queueBacklogAdaptiveGroups",
            "account",
            "AccountQueueBacklogAdaptiveGroups",
            ("queueId",),
            _T_SECOND_6H,
            ("bytes", "messages"),
            averages=("bytes", "messages"),
            sample_interval=True,
            level=True,
            generate=_queue_backlog,
        ),
        DatasetSpec(
            "pagesFunctionsInvocationsAdaptiveGroups",
            "account",
            "AccountPagesFunctionsInvocationsAdaptiveGroups",
            ("scriptName", "status", "usageModel"),
            ("date", "datetime", "datetimeHour", "datetimeMinute", "datetimeSixHours"),
            _PAGES_VALUES,
            sums=tuple((v, v) for v in _PAGES_VALUES),
            float_sums={"duration": 65536},
            sample_interval=True,
            generate=_pages_functions,
        ),
    )
}
ZONE_DATASETS = tuple(n for n, s in SPECS.items() if s.scope == "zone")
ACCOUNT_DATASETS = tuple(n for n, s in SPECS.items() if s.scope == "account")
