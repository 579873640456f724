"""docs/metrics.md, generated from the catalogue (`otelbridge docs`)."""

from __future__ import annotations

from otelbridge.catalogue import QUANTILE, AverageGauge, Catalogue, Dataset, SourcedMetric


def prometheus_name(name: str, unit: str, counter: bool) -> str:
    """The name the OTel Prometheus exporter renders (0.66): dots to _, unit suffix, _total."""
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

    base = sanitize_full_name(name)
    suffix = map_unit(unit)
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    return f"{base}_total" if counter else base


def series_per_group(dataset: Dataset, quantiles: int, values: int | None) -> int:
    """Series one entity (one Worker of an account dataset, one zone of a zone dataset) costs under
    a selected catalogue, when each dimension it is broken down by has taken one value, or `values`
    of them (None: each its known number)."""
    fixed = tuple(a for a in dataset.counter_key if a not in dataset.optional and a not in _per(dataset))

    def spread(counter: SourcedMetric) -> int:
        out = 1
        for a in (*fixed, *counter.attributes):
            out *= values if values is not None else (dataset.dimension(a).values or 1)
        return out

    counters = sum(spread(c) for _, c in dataset.exported_counters)
    gauges = (
        len(dataset.quantile_gauges) * quantiles + len(dataset.average_gauges) + len(dataset.level_gauges)
    )
    return counters + gauges


def _per(dataset: Dataset) -> tuple[str, ...]:
    """What the cost table counts per: a zone (all its series), or the page key's entity (a Worker)."""
    return () if dataset.scope == "zone" else (dataset.page_key,)


def _breakdown(dataset: Dataset) -> str:
    return ", ".join(dataset.dimension(a).field for a in dataset.counter_key if a not in _per(dataset))


def _entity(dataset: Dataset) -> str:
    return "zone" if dataset.scope == "zone" else dataset.dimension(dataset.page_key).field


def _default(dataset: Dataset, metric: SourcedMetric | AverageGauge, counter: bool) -> str:
    if not metric.enabled:
        return "off"
    if counter and isinstance(metric, SourcedMetric) and dataset.optional:
        if metric.attributes:
            return "on, by " + ", ".join(dataset.dimension(a).field for a in metric.attributes)
        return f"on, per {_entity(dataset)}"
    return "on"


def _opt_in(dataset: Dataset) -> list[str]:
    """The attributes off by default, and what configuring one costs."""
    off = [dataset.dimension(a) for a in dataset.optional if not dataset.dimension(a).default]
    if not off:
        return []
    names = ", ".join(f"`{d.attribute}` ({d.values or 'unbounded'})" for d in off)
    return [
        f"Off unless configured on a counter, even with `full` (values in brackets): {names}. Each",
        "multiplies the series of the counters configured with it by its values. Until configured it",
        "is not even grouped by; configuring it (or dropping it again) restarts this dataset's counters",
        "from the lookback, as a counter reset.",
        "",
    ]


def _cost(dataset: Dataset) -> list[str]:
    q = len(dataset.default_quantiles)
    lean, full = dataset.select("lean"), dataset.select("full")
    entity = _entity(dataset)
    head = [f"### What each {entity} costs in series", ""]
    if not dataset.optional:
        group = ", ".join(_fields(dataset, dataset.gauge_key or (dataset.page_key,)))
        lean_n, full_n = series_per_group(lean, q, 1), series_per_group(full, q, 1)
        return [
            *head,
            f"Series per {entity} (per group of {group}): {lean_n} with `lean`, {full_n} with `full`.",
        ]
    breakdown = _breakdown(lean)
    quantiles = f", with the default quantiles ({q})," if dataset.quantile_gauges else ""
    per_quantile = f" a quantile gauge, one per exported quantile ({q} by default);" if q else ""
    return [
        *head,
        "Backends bill by active series, so the default profile (`lean`) exports what most users chart",
        f"and alert on. Series per {entity}{quantiles} for one that has seen one value of {breakdown}"
        " and one that has seen them all:",
        "",
        f"| Profile | One {breakdown} | All |",
        "|---|---|---|",
        f"| `lean` (default) | {series_per_group(lean, q, 1)} | {series_per_group(lean, q, None)} |",
        f"| `full` | {series_per_group(full, q, 1)} | {series_per_group(full, q, None)} |",
        "",
        f"Turning a metric on adds, per {entity}: a counter by {breakdown}, one series per value; a",
        f"counter per {entity}, 1;{per_quantile} an average or level gauge, 1. The `attributes` of a",
        "counter (in `metrics:`) choose its breakdown.",
        "",
        *_opt_in(dataset),
    ]


def _fields(dataset: Dataset, attributes: tuple[str, ...]) -> list[str]:
    return [dataset.dimension(a).field for a in attributes]


def _overview(catalogue: Catalogue) -> list[str]:
    lines = [
        "## Datasets",
        "",
        "Every polled dataset of an account travels in the same GraphQL request, once per cycle; a",
        "dataset the account's settings say is not enabled is skipped for that account. Series per",
        "resource with one value of each breakdown attribute (see each dataset's cost section):",
        "",
        "| Dataset | Scope | Polled | Stability | Per | `lean` | `full` |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in catalogue.datasets:
        q = len(d.default_quantiles)
        lean, full = series_per_group(d.select("lean"), q, 1), series_per_group(d.select("full"), q, 1)
        polled = "yes" if d.enabled else "opt-in"
        lines.append(
            f"| [`{d.dataset}`](#{d.dataset.lower()}) | {d.scope} | {polled} | {d.stability} | "
            f"{_entity(d)} | {lean} | {full} |"
        )
    return [*lines, ""]


CONFIG_EXAMPLE = [
    "## Choosing metrics",
    "",
    "Every counter is counted whatever is exported, so a metric turned on later (with saved",
    "state) starts from the whole count, not from the moment it was turned on. Per metric, in the",
    "configuration file:",
    "",
    "```yaml",
    "profile: lean            # or full: every metric, every counter by its optional attributes",
    "metrics:",
    "  cloudflare.workers.subrequests: {enabled: true}",
    "  cloudflare.workers.cpu_time: {attributes: [cloudflare.workers.status]}",
    "  cloudflare.workers.invocation.wall_time: {enabled: true}",
    "  # Workers for Platforms: requests by dispatch namespace too (off by default, even with full)",
    "  cloudflare.workers.requests:",
    "    attributes: [cloudflare.workers.status, cloudflare.workers.dispatch_namespace]",
    "  # Developer-platform datasets are opt-in: naming one of a dataset's metrics polls it, with",
    "  # its lean metrics (`profile: full` polls every dataset)",
    "  cloudflare.r2.operations: {enabled: true}",
    "  cloudflare.r2.storage.size: {enabled: true}",
    "  cloudflare.d1.read_queries: {enabled: true}",
    "```",
    "",
    "Each dataset polled adds its aliases (two or three) to the one request per account and cycle,",
    "and Cloudflare's documented limits count a request's queries as its scopes times its dataset",
    "nodes. A dataset none of whose metrics is exported is not polled at all; turned on later, it",
    "counts from the lookback.",
    "",
]


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


def _dataset_section(dataset: Dataset, quantiles: tuple[str, ...]) -> list[str]:
    lines = [
        f"## {dataset.dataset}",
        "",
        f"Source: `{dataset.dataset}` ({dataset.scope} scope, `otelbridge/{dataset.file}`), "
        f"stability: {dataset.stability}{'' if dataset.enabled else ', opt-in (see Choosing metrics)'}.",
        "",
        *_cost(dataset),
    ]
    if dataset.counters:
        lines += [
            "### Counters (cumulative from process start, or from saved state)",
            "",
            "| OpenTelemetry name | Prometheus name | Unit | Cloudflare field | Labels | Default "
            "| Description |",
            "|---|---|---|---|---|---|---|",
        ]
    for c in dataset.counters:
        field = c.source + (f" ({c.api_unit})" if c.api_unit else "")
        labels = _labels(*dataset.scope_attributes, *dataset.counter_key)
        lines.append(_row(c.name, c.unit, True, field, labels, _default(dataset, c, True), c.description))
    if dataset.optional:
        optional = ", ".join(dataset.dimension(a).field for a in dataset.optional)
        lines += ["", f"Labels: {optional} only where the counter is exported by it (see Default)."]
    offered = [d for d in dataset.dimensions if d.attribute not in (*dataset.counter_key, *dataset.gauge_key)]
    if offered:
        lines += [
            "",
            "Offered but not counted by default (each multiplies rows and series; add with",
            f"`datasets: {{{dataset.dataset}: {{dimensions: [...]}}}}`, see docs/zones.md): "
            + ", ".join(f"`{d.attribute}` ({d.field})" for d in offered)
            + ".",
        ]
    if not dataset.gauges:
        lines += ["", "Labels:", ""]
        lines += [f"- `{n}` (`{n.replace('.', '_')}`): {text}" for n, text in dataset.attributes.items()]
        return [*lines, ""]
    window = f"the last one kept {dataset.level_window} minutes" if dataset.level_window else ""
    lines += [
        "",
        f"### Gauges (over the most recent settled quantile window{'; levels: ' + window if window else ''})",
        "",
        "| OpenTelemetry name | Prometheus name | Unit | Cloudflare fields | Labels | Default "
        "| Description |",
        "|---|---|---|---|---|---|---|",
    ]
    key = dataset.gauge_key
    for g in dataset.quantile_gauges:
        first, last = quantiles[0], quantiles[-1]
        fields = f"quantiles.{dataset.quantile_field(g, first)} … {dataset.available_quantiles[last]}"
        field = fields + (f" ({g.api_unit})" if g.api_unit else "")
        labels = _labels(*dataset.scope_attributes, *key, QUANTILE)
        lines.append(_row(g.name, g.unit, False, field, labels, _default(dataset, g, False), g.description))
    for a in dataset.average_gauges:
        labels = _labels(*dataset.scope_attributes, *key)
        lines.append(
            _row(a.name, a.unit, False, f"avg.{a.field}", labels, _default(dataset, a, False), a.description)
        )
    for g in dataset.level_gauges:
        labels = _labels(*dataset.scope_attributes, *key)
        lines.append(
            _row(g.name, g.unit, False, g.source, labels, _default(dataset, g, False), g.description)
        )
    if dataset.quantile_gauges:
        lines += [
            "",
            f"Quantiles offered: {', '.join(dataset.available_quantiles)}; exported by default: "
            f"{', '.join(dataset.default_quantiles)} (setting `quantiles`).",
        ]
    lines += ["", "Labels:", ""]
    lines += [f"- `{name}` (`{name.replace('.', '_')}`): {text}" for name, text in dataset.attributes.items()]
    return [*lines, ""]


def metrics_markdown(catalogue: Catalogue) -> str:
    lines = [
        "# Metrics",
        "",
        "Generated from `otelbridge/catalogue/*.yaml` by `otelbridge docs`; do not edit by hand.",
        "One section per Cloudflare dataset (GraphQL Analytics API), then otelbridge's own metrics.",
        "",
        *CONFIG_EXAMPLE,
        *_overview(catalogue),
    ]
    for dataset in catalogue.datasets:
        lines += _dataset_section(dataset, tuple(dataset.available_quantiles))
    lines += [
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
