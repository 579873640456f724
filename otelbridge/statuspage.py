"""The HTML status page at `/`: one self-contained page rendered on the server (no scripts, no
external assets), so it works offline, behind the same TLS and basic auth as /metrics.

Everything shown comes from Bridge.status() and the bounded History; the token never reaches
either. Every text from outside (script names, error messages, URLs) goes through _text().
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from otelbridge import __version__
from otelbridge.history import WINDOW, Busiest, History, Point

if TYPE_CHECKING:
    from otelbridge.bridge import Bridge

TOP_SCRIPTS = 10
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:0 0 .4em}h3{font-size:.95em;margin:.9em 0 .3em}
header{display:flex;gap:1em;align-items:baseline;flex-wrap:wrap;margin-bottom:1em}
header .meta{color:#5a6270}a{color:#1f5fbf}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:1em;margin-bottom:1em}
.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-weight:600;font-size:.85em}
.up{background:#2a8a4a}.down{background:#c0392b}.starting{background:#7a7f87}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.5em 0}
dt{color:#5a6270}dd{margin:0;font-variant-numeric:tabular-nums}
.error{color:#c0392b;white-space:pre-wrap;word-break:break-word}
table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{text-align:left;padding:.2em .6em;border-bottom:1px solid #eef0f3;vertical-align:middle}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.script{word-break:break-all;white-space:pre-wrap;max-width:28em}
.legend{font-weight:normal;margin-left:1em}.legend span{margin-right:1em}
.req{color:#1f5fbf}.err{color:#c0392b}
.bar{display:inline-block;width:8em;height:.7em;background:#eef0f3;border-radius:2px;vertical-align:middle}
.bar i{display:block;height:100%;background:#1f5fbf;border-radius:2px}
.muted{color:#7a7f87}
"""


def _text(value: object) -> str:
    """HTML-escaped, with control characters (invalid in HTML) shown as U+FFFD."""
    return html.escape(_CONTROL.sub("\ufffd", str(value)), quote=True)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _minute(iso: str | None) -> str:
    moment = _when(iso)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "n/a"


# --- charts ---------------------------------------------------------------------------------


def _steps(
    points: Sequence[Point], value: Any, start: datetime, width: float, height: float, top: float
) -> str:
    """An SVG path drawing each point as a flat step over its minutes, at its per-minute rate."""
    parts: list[str] = []
    last_end: datetime | None = None
    for p in points:
        if p.end <= start:
            continue
        x0 = max(0.0, (p.start - start) / WINDOW * width)
        x1 = min(width, (p.end - start) / WINDOW * width)
        y = height - (value(p) / p.minutes) / top * height if top else height
        parts.append(f"{'L' if last_end == p.start else 'M'}{x0:.1f},{y:.1f}H{x1:.1f}")
        last_end = p.end
    return "".join(parts)


def _chart(points: Sequence[Point], requests: Any, errors: Any, width: int, height: int, label: str) -> str:
    """Requests and errors per minute over the last hour, as two step lines."""
    if not points:
        return f'<p class="muted">No minutes settled in the last hour yet ({_text(label)}).</p>'
    end = max(p.end for p in points)
    start = end - WINDOW
    top = max((max(requests(p), errors(p)) / p.minutes for p in points), default=0.0)
    req = _steps(points, requests, start, width, height, top)
    err = _steps(points, errors, start, width, height, top)
    return (
        f'<svg role="img" aria-label="{_text(label)}" width="{width}" height="{height + 16}" '
        f'viewBox="0 -2 {width} {height + 18}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(label)}</title>"
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f5f7fa"/>'
        f'<path d="{req}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>'
        f'<path d="{err}" fill="none" stroke="#c0392b" stroke-width="1.5"/>'
        f'<text x="2" y="10" font-size="10" fill="#5a6270">{_rate(top)}/min</text>'
        f'<text x="0" y="{height + 13}" font-size="10" fill="#5a6270">'
        f"{start.astimezone(UTC):%H:%M}</text>"
        f'<text x="{width}" y="{height + 13}" font-size="10" fill="#5a6270" text-anchor="end">'
        f"{end.astimezone(UTC):%H:%M} UTC</text></svg>"
    )


def _script_chart(points: Sequence[Point], script: str) -> str:
    def requests(p: Point) -> float:
        return p.scripts.get(script, (0.0, 0.0))[0]

    def errors(p: Point) -> float:
        return p.scripts.get(script, (0.0, 0.0))[1]

    return _chart(points, requests, errors, 240, 36, f"requests and errors per minute of {script}")


# --- sections -------------------------------------------------------------------------------


def _scripts_table(points: Sequence[Point], busiest: Sequence[Busiest]) -> str:
    if not busiest:
        return ""
    rows = []
    for b in busiest:
        share = f"{b.errors / b.requests:.1%}" if b.requests else "n/a"
        rows.append(
            f'<tr><td class="script">{_text(b.script)}</td><td class="n">{_count(b.requests)}</td>'
            f'<td class="n">{_count(b.errors)}</td><td class="n">{share}</td>'
            f"<td>{_script_chart(points, b.script)}</td></tr>"
        )
    return (
        f"<h3>Busiest scripts, last hour (top {len(busiest)} by requests)</h3>"
        '<table><thead><tr><th>script</th><th class="n">requests</th><th class="n">errors</th>'
        '<th class="n">error rate</th><th>per minute</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _zones(info: Mapping[str, Any] | None) -> str:
    """The account's zones: each one's name, whether its last poll succeeded, what its plan lacks."""
    if not info:
        return ""
    zones: Mapping[str, Any] = info.get("zones", {})
    up = sum(1 for z in zones.values() if z.get("up"))
    error = info.get("listing_error")
    rows = "".join(
        f"<tr><td>{_text(z.get('name', ''))}</td><td><code>{_text(tag)}</code></td>"
        f"<td>{'up' if z.get('up') else 'down'}</td>"
        f"<td>{_text(', '.join(z.get('skipped', [])) or '-')}</td>"
        f'<td class="error">{_text(z.get("last_error") or "")}</td></tr>'
        for tag, z in sorted(zones.items(), key=lambda item: str(item[1].get("name", "")))
    )
    return (
        f"<h3>Zones: {up} of {len(zones)} up, {int(info.get('groups', 0))} request(s) per cycle</h3>"
        + (f'<p class="error">zone listing: {_text(error)}</p>' if error else "")
        + (
            "<table><tr><th>zone</th><th>id</th><th>last poll</th><th>not in its plan (skipped)</th>"
            f"<th>last error</th></tr>{rows}</table>"
            if rows
            else ""
        )
    )


def _account(tag: str, info: Mapping[str, Any], history: History, now: datetime) -> str:
    last = history.last_poll.get(tag)
    up = bool(info.get("up"))
    state = ("up", "UP") if up else (("down", "DOWN") if last else ("starting", "NOT POLLED YET"))
    counted = _when(info.get("counted"))
    facts = [
        ("last poll", f"{last.at:%Y-%m-%d %H:%M:%S} UTC ({_ago(last.at, now)}, took {last.seconds:.2f}s)"
         if last else "not yet"),
        ("final up to (settled)", _minute(info.get("settled"))),
        ("counted up to (watermark)", _minute(info.get("counted"))),
        ("watermark lag", _duration(now - counted) if counted else "n/a"),
        ("series", _count(info.get("series", 0))),
        ("failed cycles in a row", _count(info.get("failures", 0))),
        ("minutes lost (too old to fetch)", _count(info.get("gap_minutes", 0))),
    ]  # fmt: skip
    error = info.get("last_error")
    points = history.points(tag)
    return (
        f'<section id="account-{_text(tag)}"><h2>Account <code>{_text(tag)}</code> '
        f'<span class="badge {state[0]}">{state[1]}</span></h2><dl>'
        + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
        + (f'<dt>last error</dt><dd class="error">{_text(error)}</dd>' if error else "")
        + '</dl><h3>Requests and errors per minute, last hour <span class="legend">'
        '<span class="req">━ requests</span><span class="err">━ errors</span></span></h3>'
        + _chart(points, lambda p: p.requests, lambda p: p.errors, 720, 120, f"account {tag}")
        + _scripts_table(points, history.busiest(tag, TOP_SCRIPTS))
        + _zones(info.get("zones"))
        + "</section>"
    )


def _overview(status: Mapping[str, Any], rate_limit: int) -> str:
    accounts: Mapping[str, Any] = status.get("accounts", {})
    up = sum(1 for a in accounts.values() if a.get("up"))
    used = int(status.get("rate_limit_used", 0))
    share = min(1.0, used / rate_limit) if rate_limit else 0.0
    outcomes = ", ".join(f"{_text(k)} {_count(v)}" for k, v in sorted(status.get("api_requests", {}).items()))
    exports = ", ".join(f"{_text(k)} {_count(v)}" for k, v in sorted(status.get("otlp_exports", {}).items()))
    facts = [
        ("accounts up", f"{up} of {len(accounts)}"),
        ("Cloudflare API", _text(status.get("api_url", ""))),
        ("rate budget (5 min)", f'<span class="bar"><i style="width:{share:.0%}"></i></span> '
         f"{used} of {rate_limit} queries"),
        ("series exported", f"{_count(status.get('series', 0))} "
         f"({_count(status.get('series_dropped', 0))} dropped over max_series)"),
        ("API calls by outcome", outcomes or "none yet"),
        ("OTLP exports", exports or "off or none yet"),
        ("/metrics render", f"{float(status.get('page_render_seconds', 0.0)):.3f}s"),
    ]  # fmt: skip
    error = status.get("discovery_error")
    return (
        "<section><h2>Overview</h2><dl>"
        + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
        + (f'<dt>account discovery</dt><dd class="error">{_text(error)}</dd>' if error else "")
        + "</dl></section>"
    )


def render(status: Mapping[str, Any], history: History, rate_limit: int, now: datetime) -> str:
    accounts: Mapping[str, Any] = status.get("accounts", {})
    body = "".join(_account(tag, info, history, now) for tag, info in accounts.items())
    if not accounts:
        body = '<section><p class="muted">No accounts yet: see account discovery above.</p></section>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # A page that is already data: never cached, refreshed by the browser every minute.
        '<meta http-equiv="refresh" content="60">'
        f"<title>otelbridge status</title><style>{STYLE}</style></head><body>"
        f'<header><h1>otelbridge</h1><span class="meta">{_text(__version__)} · '
        f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC</span>"
        '<a href="metrics">/metrics</a><a href="status">/status (JSON)</a></header>'
        + _overview(status, rate_limit)
        + body
        + "</body></html>"
    )


def for_bridge(bridge: Bridge) -> Callable[[], str]:
    """The page of this bridge, rendered on each request (cheap: top scripts only, bounded history)."""

    def page() -> str:
        return render(bridge.status(), bridge.history, bridge.config.rate_limit, bridge.clock.now())

    return page
