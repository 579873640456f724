"""docs/metrics.md, generated from the catalogue (`otelbridge docs`)."""

from __future__ import annotations

from otelbridge.catalogue import ACCOUNT, QUANTILE, SCRIPT, STATUS, AverageGauge, Catalogue, SourcedMetric


def prometheus_name(name: str, unit: str, counter: bool) -> str:
    """The name the OTel Prometheus exporter renders (0.66): dots to _, unit suffix, _total."""
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

    base = sanitize_full_name(name)
    suffix = map_unit(unit)
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    return f"{base}_total" if counter else base


STATUSES = 5  # values of the status dimension: the most series one script can have per counter


def series_per_script(catalogue: Catalogue, quantiles: int, statuses: int) -> int:
    """Series one Worker costs under a selected catalogue, when it has seen `statuses` statuses."""
    counters = sum(statuses if STATUS in c.attributes else 1 for _, c in catalogue.exported_counters)
    return counters + len(catalogue.quantile_gauges) * quantiles + len(catalogue.average_gauges)


def _default(metric: SourcedMetric | AverageGauge, counter: bool) -> str:
    if not metric.enabled:
        return "off"
    if counter and isinstance(metric, SourcedMetric):
        return "on, by status" if STATUS in metric.attributes else "on, per script"
    return "on"


def _cost(catalogue: Catalogue) -> list[str]:
    q = len(catalogue.default_quantiles)
    lean, full = catalogue.select("lean"), catalogue.select("full")
    lines = [
        "## What each Worker costs in series",
        "",
        "Backends bill by active series, so the default profile (`lean`) exports what most users chart",
        "and alert on. Series per Worker script, with the default quantiles "
        f"({q}), for a script that has seen one status and one that has seen all {STATUSES}:",
        "",
        "| Profile | One status | All statuses |",
        "|---|---|---|",
        f"| `lean` (default) | {series_per_script(lean, q, 1)} | {series_per_script(lean, q, STATUSES)} |",
        f"| `full` | {series_per_script(full, q, 1)} | {series_per_script(full, q, STATUSES)} |",
        "",
        "Turning a metric on adds, per Worker: a counter by status, 1 to "
        f"{STATUSES} series; a counter per script, 1; a quantile gauge, one per exported quantile "
        f"({q} by default); an average gauge, 1. Adding the status breakdown to a counter that is per "
        f"script turns its 1 series into up to {STATUSES}. Per metric, in the configuration file:",
        "",
        "```yaml",
        "profile: lean            # or full: every metric below, every counter by status",
        "metrics:",
        "  cloudflare.workers.subrequests: {enabled: true}",
        "  cloudflare.workers.cpu_time: {attributes: [cloudflare.workers.status]}",
        "  cloudflare.workers.invocation.wall_time: {enabled: true}",
        "```",
        "",
        "Every counter is counted whatever is exported, so a metric turned on later (with saved",
        "state) starts from the whole count, not from the moment it was turned on.",
        "",
    ]
    return lines


# Prometheus names changed so that `promtool check metrics` passes and both export paths agree.
RENAMED = (  # (old, new, note)
    ("cloudflare_workers_duration_GBy_s_total", "cloudflare_workers_duration_gigabyte_seconds_total", ""),
    (
        "cloudflare_workers_invocation_duration_GBy_s",
        "cloudflare_workers_invocation_duration_gigabyte_seconds",
        "",
    ),
    ("otelbridge_gap_minutes_total", "otelbridge_gap_seconds_total", "seconds, 60 per minute"),
    ("otelbridge_counter_corrections_total", "otelbridge_corrections_total", ""),
    ("otelbridge_up_ratio", "otelbridge_up", "the old name existed through a Collector only"),
    (
        "cloudflare_workers_sample_interval_ratio",
        "cloudflare_workers_sample_interval",
        "the old name existed through a Collector only",
    ),
)


def _unit(unit: str) -> str:
    return f"`{unit}`" if unit else "-"


def _labels(*attributes: str) -> str:
    return ", ".join(f"`{a.replace('.', '_')}`" for a in attributes)


def _row(
    name: str, unit: str, counter: bool, source: str, labels: str, default: str, description: str
) -> str:
    exported = prometheus_name(name, unit, counter)
    return f"| `{name}` | `{exported}` | {_unit(unit)} | `{source}` | {labels} | {default} | {description} |"


def metrics_markdown(catalogue: Catalogue) -> str:
    lines = [
        "# Metrics",
        "",
        "Generated from `otelbridge/catalogue.yaml` by `otelbridge docs`; do not edit by hand.",
        "",
        f"Source dataset: `{catalogue.dataset}` (Cloudflare GraphQL Analytics API).",
        "",
        *_cost(catalogue),
        "## Counters (cumulative from process start, or from saved state)",
        "",
        "Labels: the status label only where the counter is exported by status (see Default).",
        "",
        "| OpenTelemetry name | Prometheus name | Unit | Cloudflare field | Labels | Default | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in catalogue.counters:
        field = f"sum.{c.field}" + (f" ({c.api_unit})" if c.api_unit else "")
        labels = _labels(ACCOUNT, SCRIPT, STATUS)
        lines.append(_row(c.name, c.unit, True, field, labels, _default(c, True), c.description))
    lines += [
        "",
        "## Quantile gauges (over the most recent settled quantile window, per script)",
        "",
        "| OpenTelemetry name | Prometheus name | Unit | Cloudflare fields | Labels | Default "
        "| Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in catalogue.quantile_gauges:
        field = f"quantiles.{g.field}P25 … P999" + (f" ({g.api_unit})" if g.api_unit else "")
        labels = _labels(ACCOUNT, SCRIPT, QUANTILE)
        lines.append(_row(g.name, g.unit, False, field, labels, _default(g, False), g.description))
    for a in catalogue.average_gauges:
        labels = _labels(ACCOUNT, SCRIPT)
        lines.append(_row(a.name, a.unit, False, f"avg.{a.field}", labels, _default(a, False), a.description))
    lines += [
        "",
        f"Quantiles offered: {', '.join(catalogue.available_quantiles)}; exported by default: "
        f"{', '.join(catalogue.default_quantiles)} (setting `quantiles`).",
        "",
        "## Self-telemetry",
        "",
        "| OpenTelemetry name | Prometheus name | Kind | Unit | Labels | Description |",
        "|---|---|---|---|---|---|",
    ]
    for m in catalogue.self_metrics:
        labels = _labels(*m.attributes) if m.attributes else "-"
        lines.append(
            f"| `{m.name}` | `{prometheus_name(m.name, m.unit, m.kind == 'counter')}` | {m.kind} | "
            f"{_unit(m.unit)} | {labels} | {m.description} |"
        )
    lines += ["", "## Labels", ""]
    lines += [
        f"- `{name}` (`{name.replace('.', '_')}`): {text}" for name, text in catalogue.attributes.items()
    ]
    return "\n".join([*lines, *_naming_section()]) + "\n"


def _naming_section() -> list[str]:
    lines = [
        "",
        "## Names",
        "",
        "The names are the same on `/metrics` and after OTLP → Collector → remote write, and",
        "`promtool check metrics` finds nothing on `/metrics` except one deliberate exception: the",
        "quantile gauges carry a `quantile` label without being a summary. Cloudflare computes",
        "each quantile over a window and gives neither the count nor the sum of the events, so the",
        "values cannot form a Prometheus summary; they are plain gauges, one series per quantile.",
        "",
        "Renamed (old → new):",
        "",
        "| Old name | New name | Note |",
        "|---|---|---|",
    ]
    return lines + [f"| `{old}` | `{new}` | {note} |" for old, new, note in RENAMED]
