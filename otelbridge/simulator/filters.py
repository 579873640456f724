"""Dimensions of workersInvocationsAdaptive and Cloudflare's filter semantics over them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from otelbridge.simulator.events import Event
from otelbridge.simulator.traffic import Account, utc

Key = str | int  # comparable form of a dimension value: strings, epoch seconds, epoch days
Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class Dimension:
    key: Callable[[Account, Event], Key]
    parse: Callable[[Any], Key]  # filter value -> key
    render: Callable[[Key], str | int]  # key -> JSON value
    bucket: int = 0  # seconds covered by one time key (0: not a time)


def _truncate(seconds: int) -> Callable[[Account, Event], Key]:
    minutes = seconds // 60
    return lambda _a, e: e.minute // minutes * minutes * 60


def _rfc3339(key: Key) -> str:
    return datetime.fromtimestamp(int(key), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> Key:
    return math.floor(utc(str(value)).timestamp())


def _time(bucket: int) -> Dimension:
    return Dimension(_truncate(bucket), _parse_time, _rfc3339, bucket)


def _text(key: Callable[[Account, Event], Key]) -> Dimension:
    return Dimension(key, str, lambda k: k)


DIMENSIONS: dict[str, Dimension] = {
    "coloCode": _text(lambda _a, e: e.colo),
    "date": Dimension(
        lambda _a, e: e.minute // 1440,
        lambda v: date.fromisoformat(str(v)).toordinal() - date(1970, 1, 1).toordinal(),
        lambda k: date.fromordinal(int(k) + date(1970, 1, 1).toordinal()).isoformat(),
        86400,
    ),
    "datetime": Dimension(lambda _a, e: e.minute * 60 + e.second, _parse_time, _rfc3339, 1),
    "datetimeMinute": _time(60),
    "datetimeFiveMinutes": _time(300),
    "datetimeFifteenMinutes": _time(900),
    "datetimeHour": _time(3600),
    "datetimeSixHours": _time(21600),
    "dispatchNamespaceName": _text(lambda _a, _e: ""),
    "environmentName": _text(lambda a, e: a.scripts[e.script].environment),
    "isDispatcher": Dimension(lambda _a, _e: 0, int, lambda k: k),
    "scriptName": _text(lambda a, e: a.scripts[e.script].name),
    "scriptTag": _text(lambda a, e: a.scripts[e.script].tag),
    "scriptVersion": _text(lambda _a, e: e.version),
    "status": _text(lambda _a, e: e.status),
    "usageModel": _text(lambda a, e: a.scripts[e.script].usage_model),
}
TIME_DIMENSIONS = {name: d for name, d in DIMENSIONS.items() if d.bucket}


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % is any run, _ any one character; everything else literal."""
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _list(value: Any) -> list[Any]:
    # isDispatcher_in is declared as `bytes`: accept a list or a string of byte values
    if isinstance(value, str):
        return list(value.encode("latin-1"))
    return list(value)


def _one(name: str, op: str, raw: Any) -> Callable[[Key], bool]:
    return compare(DIMENSIONS[name].parse, op, raw)


def compare(parse: Callable[[Any], Key], op: str, raw: Any) -> Callable[[Key], bool]:
    """A test of a dimension's key against one filter operator (`""` is equality) and its value."""
    if op in ("in", "notin"):
        allowed = {parse(v) for v in _list(raw)}
        return (lambda k: k in allowed) if op == "in" else (lambda k: k not in allowed)
    if op in ("like", "notlike"):
        rx = _like(str(raw))
        return (
            (lambda k: bool(rx.fullmatch(str(k)))) if op == "like" else (lambda k: not rx.fullmatch(str(k)))
        )
    v = parse(raw)
    compare: dict[str, Callable[[Key], bool]] = {
        "": lambda k: k == v,
        "neq": lambda k: k != v,
        "gt": lambda k: k > v,  # type: ignore[operator]
        "geq": lambda k: k >= v,  # type: ignore[operator]
        "lt": lambda k: k < v,  # type: ignore[operator]
        "leq": lambda k: k <= v,  # type: ignore[operator]
    }
    return compare[op]


def split_key(field: str) -> tuple[str, str]:
    name, _, op = field.partition("_")
    return name, op


def _all(preds: list[Predicate]) -> Predicate:
    return lambda e: all(p(e) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda e: any(p(e) for p in preds)


def _check(account: Account, key: Callable[[Account, Event], Key], test: Callable[[Key], bool]) -> Predicate:
    return lambda e: test(key(account, e))


def compile_filter(account: Account, spec: Mapping[str, Any]) -> Predicate:
    """A predicate over events for one filter object (keys AND-ed; AND/OR lists nest)."""
    checks: list[Predicate] = []
    for field, raw in spec.items():
        if raw is None:  # an unset optional variable constrains nothing
            continue
        if field in ("AND", "OR"):
            subs = [compile_filter(account, s) for s in raw]
            checks.append(_all(subs) if field == "AND" else _any(subs))
            continue
        name, op = split_key(field)
        checks.append(_check(account, DIMENSIONS[name].key, _one(name, op, raw)))
    return _all(checks)


def time_bounds(spec: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """Conservative [lo, hi) in epoch seconds implied by the filter's time keys (AND-ed parts only)."""
    lo: float | None = None
    hi: float | None = None

    def tighten(new_lo: float | None, new_hi: float | None) -> None:
        nonlocal lo, hi
        if new_lo is not None:
            lo = new_lo if lo is None else max(lo, new_lo)
        if new_hi is not None:
            hi = new_hi if hi is None else min(hi, new_hi)

    for field, raw in spec.items():
        if raw is None or field == "OR":
            continue
        if field == "AND":
            for sub in raw:
                tighten(*time_bounds(sub))
            continue
        name, op = split_key(field)
        dim = TIME_DIMENSIONS.get(name)
        if dim is None:
            continue
        values = [int(dim.parse(v)) for v in raw] if op == "in" else [int(dim.parse(raw))]
        if not values:
            continue
        # keys are multiples of `step`; an event with key k happened in [k, k + bucket) seconds
        step = 1 if name == "date" else dim.bucket
        scale = 86400 if name == "date" else 1  # date keys count days
        first, last = min(values), max(values)
        if op in ("", "in"):
            tighten(first * scale, last * scale + dim.bucket)
        elif op == "geq":
            tighten(-(-first // step) * step * scale, None)
        elif op == "gt":
            tighten((first // step + 1) * step * scale, None)
        elif op == "lt":
            tighten(None, -(-last // step) * step * scale)
        elif op == "leq":
            tighten(None, (last // step + 1) * step * scale)
    return lo, hi


def split_range(spec: Mapping[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """Split off the AND-ed `<time>_geq/_gt/_lt/_leq` keys as an exact [lo, hi) on the event time.

    Those keys are almost every filter's bulk; two comparisons per event instead of the general
    predicate keep big pages fast. Returns (lo, hi, the rest of the filter).
    """
    lo, hi = -math.inf, math.inf
    rest: dict[str, Any] = {}
    for field, raw in spec.items():
        name, op = split_key(field)
        if raw is None:
            continue
        if name in TIME_DIMENSIONS and op in ("geq", "gt", "lt", "leq"):
            key_lo, key_hi = time_bounds({field: raw})
            lo, hi = (
                max(lo, key_lo if key_lo is not None else lo),
                min(hi, key_hi if key_hi is not None else hi),
            )
        elif field == "AND":
            kept = []
            for sub in raw:
                sub_lo, sub_hi, sub_rest = split_range(sub)
                lo, hi = max(lo, sub_lo), min(hi, sub_hi)
                if sub_rest:
                    kept.append(sub_rest)
            if kept:
                rest["AND"] = kept
        else:
            rest[field] = raw
    return lo, hi, rest
