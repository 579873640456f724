"""The results as Markdown tables, with the targets they are held against."""

from __future__ import annotations

from typing import Any

Results = list[tuple[str, dict[str, Any], dict[str, Any]]]


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.3f}" if base else "n/a"


def _scrape_rows(results: Results) -> list[str]:
    lines = [
        "| series | accounts x scripts | render per poll | /metrics p50 / p99 (gzip) | identity p50 / p99 "
        "| baseline p50 / p99 | p99 ratio | during a poll p50 / p99 | loop lag in poll | values equal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, r in results:
        if name != "scrapes":
            continue
        o, i, b, d = r["ours"], r["ours_identity"], r["baseline"], r["during_poll"]
        lines.append(
            f"| {r['series']:,} | {r['accounts']} x {r['scripts'] // r['accounts']} | {r['render_s']} s "
            f"| {o['p50_ms']} / {o['p99_ms']} ms | {i['p50_ms']} / {i['p99_ms']} ms "
            f"| {b['p50_ms']} / {b['p99_ms']} ms (n={b['n']}) | {_ratio(o['p99_ms'], b['p99_ms'])} "
            f"| {d['p50_ms']} / {d['p99_ms']} ms (n={d['n']}) | {r['loop_lag_during_poll_ms']} ms "
            f"| {'yes' if r['values_equal'] else 'NO'} |"
        )
    return lines


def _concurrent_rows(results: Results) -> list[str]:
    lines = []
    for name, _, r in results:
        c = r.get("concurrent") if name == "scrapes" else None
        if c:
            lines.append(
                f"| {r['series']:,} | {c['scrapers']} | {c['n']} | {c['p50_ms']} / {c['p99_ms']} / "
                f"{c['max_ms']} ms | {c['failures']} | {c['loop_lag_ms']} ms |"
            )
    head = [
        "| series | scrapers | scrapes | p50 / p99 / max | failures | loop lag |",
        "|---|---|---|---|---|---|",
    ]
    return head + lines if lines else []


def _p50_p99(r: dict[str, Any]) -> str:
    return f"{r['p50_ms']} / {r['p99_ms']} ms"


def _load_rows(results: Results) -> list[str]:
    lines = [
        "| series | poll, OTLP off / on | background export | exports / OTLP polls | MB per export "
        "| scrape p50 / p99 in poll, OTLP off | in poll, OTLP on | during the export "
        "| loop lag in poll, OTLP off / on / during the export "
        "| poll landing in an export (exports after) | CPU per poll, OTLP on, export included "
        "| 20 scrapers in a poll: p99 / failures / loop lag | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, r in results:
        if name == "load":
            crowd = r["concurrent_scrapes_during_poll_otlp_on"]
            lines.append(
                f"| {r['series']:,} | {r['poll_otlp_off_s']} / {r['poll_otlp_on_s']} s "
                f"| {r['export_s']} s | {r['otlp_exports']} / {r['otlp_polls']} "
                f"| {r['otlp_mb_per_export']} | {_p50_p99(r['scrapes_during_poll_otlp_off'])} "
                f"| {_p50_p99(r['scrapes_during_poll_otlp_on'])} "
                f"| {_p50_p99(r['scrapes_during_export'])} (n={r['scrapes_during_export']['n']}) "
                f"| {r['loop_lag_poll_otlp_off_ms']} / {r['loop_lag_poll_otlp_on_ms']} "
                f"/ {r['loop_lag_export_ms']} ms "
                f"| {r['poll_landing_in_export_s']} s ({r['exports_after_landing']}) "
                f"| {r['cpu_per_poll_otlp_on_s']} s "
                f"| {crowd['p99_ms']} ms / {crowd['failures']} / {r['loop_lag_concurrent_ms']} ms "
                f"| {r['peak_rss_mb']} MB |"
            )
    return lines


def _other_rows(results: Results) -> list[str]:
    lines = []
    for name, _, r in results:
        if name == "cpu_hour":
            lines += [
                "| scripts | series | simulated minutes | CPU s per simulated hour "
                "| render per poll | loop lag |",
                "|---|---|---|---|---|---|",
                f"| {r['scripts']:,} | {r['series']:,} | {r['minutes']} | {r['cpu_s_per_hour']} "
                f"| {r['render_s_per_poll']} s | {r['loop_lag_ms']} ms |",
                "",
            ]
        if name == "requests":
            lines += [
                "| accounts | GraphQL requests per cycle | per account (min-max) |",
                "|---|---|---|",
            ]
            for row in r["rows"]:
                lines.append(
                    f"| {row['accounts']} | {row['per_cycle']:g} "
                    f"| {row['per_account_min']:g}-{row['per_account_max']:g} |"
                )
    return lines


def _side_by_side_rows(results: Results) -> list[str]:
    lines = [
        "| profile | OTLP | scripts | series | page | CPU s per hour | CPU per poll | peak RSS "
        "| scrape p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, r in results:
        if name == "side_by_side":
            lines.append(
                f"| {r['profile']} | {'on' if r['otlp'] else 'off'} | {r['scripts']:,} | {r['series']:,} "
                f"| {r['page_mb']} MB | {r['cpu_s_per_hour']} | {r['cpu_per_poll_s']} s "
                f"| {r['peak_rss_mb']} MB | {_p50_p99(r['scrape'])} |"
            )
    return lines if len(lines) > 2 else []


def _zones_rows(results: Results) -> list[str]:
    lines = [
        "| zones | scripts | series | GraphQL requests per cycle | page render | CPU per poll | peak RSS "
        "| scrape p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, _, r in results:
        if name == "zones_default":
            lines.append(
                f"| {r['zones']} | {r['scripts']:,} | {r['series']:,} | {r['requests_per_cycle']:g} "
                f"| {r['render_s']} s | {r['cpu_per_poll_s']} s | {r['peak_rss_mb']} MB "
                f"| {_p50_p99(r['scrape'])} |"
            )
    return lines if len(lines) > 2 else []


def markdown(info: dict[str, Any], results: Results) -> str:
    head = (
        f"Machine: {info['cores']} cores, {info['machine']}, Python {info['python']}, "
        f"opentelemetry-sdk {info['opentelemetry-sdk']}, exporter-prometheus "
        f"{info['opentelemetry-exporter-prometheus']}, prometheus-client {info['prometheus-client']}; "
        f"load average {info['load_avg_start']} at start, {info['load_avg_end']} at end."
    )
    sections = [
        ("One account, 60 s polls, 15 s scrapes: lean default and profile full", _side_by_side_rows(results)),
        ("The lean default with zones: one account, zones and Workers", _zones_rows(results)),
        ("Scrape latency of /metrics against a raw prometheus_client collector", _scrape_rows(results)),
        ("Concurrent scrapers (a poll cycle runs meanwhile)", _concurrent_rows(results)),
        ("OTLP export, polling and memory", _load_rows(results)),
        ("CPU and GraphQL requests", _other_rows(results)),
    ]
    parts = [head] + [f"### {title}\n\n" + "\n".join(rows) for title, rows in sections if rows]
    return "\n\n".join(parts)
