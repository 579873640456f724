"""Grafana dashboards generated from the metric catalogue.

`python -m dashboards.generate` writes dashboards/*.json; tests/unit/test_dashboards.py fails when
they are stale. One dashboard per dataset family (dashboards/families.yaml) whose panels come
from the catalogue's counters and gauges, and one for otelbridge's own health whose panels are
the catalogue's self-metrics: a metric added to the catalogue gets its panel when regenerated.

Needs grafana-foundation-sdk (the `dev` extra); otelbridge itself does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

from otelbridge.catalogue import (
    ACCOUNT,
    QUANTILE,
    ZONE_NAME,
    AverageGauge,
    Catalogue,
    Dataset,
    SelfMetric,
    SourcedMetric,
    load,
)
from otelbridge.docs import prometheus_name

HERE = Path(__file__).resolve().parent
FAMILIES = HERE / "families.yaml"
PLATFORM = HERE / "platform.yaml"
HEALTH_FILE = "bridge-health.json"
ZONES_FILE = "zones.json"  # one dashboard for every zone dataset without a families.yaml entry
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL = ".*"  # the value of "All" in the multi-value variables: every label value, and none missing
WORDS = {"cpu": "CPU", "api": "API", "otlp": "OTLP", "ratelimit": "rate limit"}

# Grafana unit ids for a value in a catalogue unit, and for its rate per second.
VALUE_UNITS = {"s": "s", "By": "bytes", "gigabyte_seconds": "suffix: GB·s", "": "none"}
RATE_UNITS = {
    "By": "Bps",
    "{event}": "cps",
    "{query}": "reqps",
    "{visit}": "reqps",
    "gigabyte_seconds": "suffix: GB·s/s",
    "{request}": "reqps",
    "{error}": "reqps",
    "s": "percentunit",  # seconds per second: the share of time
}


def value_unit(unit: str) -> str:
    return VALUE_UNITS.get(unit, "short")


def rate_unit(unit: str) -> str:
    return RATE_UNITS.get(unit, "cps")


def label(attribute: str) -> str:
    return attribute.replace(".", "_")


def title_of(name: str, prefix: str) -> str:
    """`cloudflare.workers.cpu_time` -> `CPU time` (the name after the family's prefix)."""
    words = name.removeprefix(prefix).replace(".", " ").replace("_", " ").split()
    words = [WORDS.get(w, w) for w in words]
    text = " ".join(words)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Family:
    dataset: str
    title: str
    uid: str
    file: str
    entity: str  # attribute chosen by the entity variable, e.g. faas.name
    variable: str  # its variable name, e.g. script
    variable_label: str
    breakdown: str  # the outcome attribute of the counters
    breakdown_label: str
    requests: str
    errors: str


def families(path: Path = FAMILIES) -> dict[str, Family]:
    raw: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        dataset: Family(
            dataset=dataset,
            title=f["title"],
            uid=f["uid"],
            file=f["file"],
            entity=f["entity"]["attribute"],
            variable=f["entity"]["variable"],
            variable_label=f["entity"]["label"],
            breakdown=f["breakdown"]["attribute"],
            breakdown_label=f["breakdown"]["label"],
            requests=f["requests"],
            errors=f["errors"],
        )
        for dataset, f in raw.items()
    }


@dataclass(frozen=True)
class PlatformRow:
    dataset: str
    title: str
    entity: str  # the attribute panels are drawn per, besides the account
    breakdown: str | None = None  # an outcome attribute, shown in a "by <label>" panel
    breakdown_label: str = ""
    requests: str | None = None  # with errors: an error ratio, and time counters per request
    errors: str | None = None


@dataclass(frozen=True)
class Platform:
    title: str
    uid: str
    file: str
    rows: dict[str, PlatformRow]


def platform(path: Path = PLATFORM) -> Platform:
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = {
        dataset: PlatformRow(
            dataset=dataset,
            title=r["title"],
            entity=r["entity"],
            breakdown=r.get("breakdown", {}).get("attribute"),
            breakdown_label=r.get("breakdown", {}).get("label", ""),
            requests=r.get("requests"),
            errors=r.get("errors"),
        )
        for dataset, r in raw["rows"].items()
    }
    board = raw["dashboard"]
    return Platform(board["title"], board["uid"], board["file"], rows)


def query(expr: str, legend: str, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend)
    return q.instant() if instant else q.range()


Panel = TypeVar("Panel", timeseries.Panel, stat.Panel)


def _panel(panel: Panel, title: str, description: str, unit: str, q: prometheus.Dataquery) -> Panel:
    return panel.title(title).description(description).unit(unit).datasource(DATASOURCE).with_target(q)


def series_panel(title: str, description: str, unit: str, q: prometheus.Dataquery) -> timeseries.Panel:
    return _panel(timeseries.Panel(), title, description, unit, q).height(8).span(12)


def stat_panel(title: str, description: str, unit: str, q: prometheus.Dataquery) -> stat.Panel:
    return _panel(stat.Panel(), title, description, unit, q).height(4).span(6)


def variable(name: str, title: str, metric: str, attribute: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(title)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {attribute})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
    )


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def new_dashboard(title: str, uid: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["otelbridge", "cloudflare"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
    )


def family_dashboard(catalogue: Dataset, family: Family) -> dashboard.Dashboard:
    account, entity = label(catalogue.scope_attribute), label(family.entity)
    sel = f'{account}=~"$account", {entity}=~"${family.variable}"'
    by = f"{account}, {entity}"
    legend = f"{{{{{entity}}}}} · {{{{{account}}}}}"
    prefix = family.requests.rsplit(".", 1)[0] + "."
    counters = {c.name: c for c in catalogue.counters}
    requests = prometheus_name(family.requests, counters[family.requests].unit, True)
    errors = prometheus_name(family.errors, counters[family.errors].unit, True)

    def rate(metric: str, group: str = by) -> str:
        return f"sum by ({group}) (rate({metric}{{{sel}}}[$__rate_interval]))"

    def in_range(metric: str) -> str:
        return f"sum(increase({metric}{{{sel}}}[$__range]))"

    board = (
        new_dashboard(
            family.title,
            family.uid,
            f"{catalogue.dataset}, exported by otelbridge. Generated from otelbridge's metric catalogue.",
        )
        .with_variable(variable("account", "Account", requests, account))
        .with_variable(
            variable(family.variable, family.variable_label, f'{requests}{{{account}=~"$account"}}', entity)
        )
        .with_row(dashboard.Row("Overview"))
        .with_panel(
            stat_panel(
                "Requests",
                f"Invocations in the time range. {counters[family.requests].description}",
                "short",
                query(in_range(requests), "requests", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Error ratio",
                f"Share of invocations in the time range that ended in an error. "
                f"{counters[family.errors].description}",
                "percentunit",
                query(f"{in_range(errors)} / {in_range(requests)}", "error ratio", instant=True),
            )
        )
        .with_panel(
            series_panel(
                f"Requests per second by {family.variable_label.lower()}",
                counters[family.requests].description,
                "reqps",
                query(rate(requests), legend),
            )
        )
        .with_panel(
            series_panel(
                f"Requests per second by {family.breakdown_label}",
                f"{counters[family.requests].description} By {catalogue.attributes[family.breakdown]}.",
                "reqps",
                query(rate(requests, label(family.breakdown)), f"{{{{{label(family.breakdown)}}}}}"),
            )
        )
        .with_panel(
            series_panel(
                f"Error ratio by {family.variable_label.lower()}",
                f"Errors / requests. {counters[family.errors].description}",
                "percentunit",
                query(f"{rate(errors)} / {rate(requests)}", legend),
            )
        )
        .with_row(dashboard.Row("Usage"))
    )
    for c in catalogue.counters:
        if c.name in (family.requests, family.errors):
            continue
        metric = prometheus_name(c.name, c.unit, True)
        if c.unit == "s":  # time: mean per invocation is what a reader compares with limits
            panel = series_panel(
                f"{title_of(c.name, prefix)} per request (mean)",
                f"{described(c)} Divided by the invocations.",
                "s",
                query(f"{rate(metric)} / {rate(requests)}", legend),
            )
        else:
            panel = series_panel(
                f"{title_of(c.name, prefix)} per second",
                described(c),
                rate_unit(c.unit),
                query(rate(metric), legend),
            )
        board = board.with_panel(panel)
    if catalogue.quantile_gauges:
        board = board.with_row(dashboard.Row("Per invocation (quantiles)"))
    for g in catalogue.quantile_gauges:
        metric = prometheus_name(g.name, g.unit, False)
        board = board.with_panel(
            series_panel(
                title_of(g.name, prefix + "invocation."),
                described(g),
                value_unit(g.unit),
                query(
                    f"max by ({by}, {QUANTILE}) ({metric}{{{sel}}})", f"{{{{{entity}}}}} p{{{{{QUANTILE}}}}}"
                ),
            )
        )
    rows: tuple[tuple[str, tuple[SourcedMetric | AverageGauge, ...]], ...] = (
        ("Sampling", catalogue.average_gauges),
        ("Levels", catalogue.level_gauges),
    )
    for row, gauges in rows:
        if gauges:
            board = board.with_row(dashboard.Row(row))
        for m in gauges:
            board = board.with_panel(gauge_panel(m, prefix, by, sel, legend))
    return board


def gauge_panel(
    m: SourcedMetric | AverageGauge, prefix: str, by: str, sel: str, legend: str
) -> timeseries.Panel:
    """A gauge as it is, its groups kept apart (`by`)."""
    metric = prometheus_name(m.name, m.unit, False)
    return series_panel(
        title_of(m.name, prefix),
        described(m),
        value_unit(m.unit),
        query(f"max by ({by}) ({metric}{{{sel}}})", legend),
    )


def _prefix(names: list[str]) -> str:
    """The dotted prefix the names share (`cloudflare.r2.`), so panels are titled by the rest."""
    parts = [n.split(".")[:-1] for n in names]
    common = []
    for words in zip(*parts, strict=False):
        if len(set(words)) > 1:
            break
        common.append(words[0])
    return ".".join(common) + "."


def platform_panels(dataset: Dataset, row: PlatformRow) -> list[timeseries.Panel]:
    """A row's panels: counters per second (time per request when the row has requests), error
    ratio, the breakdown, and gauges as they are; per entity and account."""
    account, entity = label(dataset.scope_attribute), label(row.entity)
    sel, by = f'{account}=~"$account"', f"{account}, {entity}"
    legend = f"{{{{{entity}}}}} · {{{{{account}}}}}"
    gauges: tuple[SourcedMetric | AverageGauge, ...] = (*dataset.level_gauges, *dataset.average_gauges)
    prefix = _prefix([m.name for m in (*dataset.counters, *gauges)])
    names = {c.name: prometheus_name(c.name, c.unit, True) for c in dataset.counters}

    def rate(metric: str, group: str = by) -> str:
        return f"sum by ({group}) (rate({metric}{{{sel}}}[$__rate_interval]))"

    out = []
    if row.requests and row.errors:
        out.append(
            series_panel(
                f"Error ratio by {entity_title(row.entity, dataset)}",
                f"Errors / requests. {dataset_metric(dataset, row.errors).description}",
                "percentunit",
                query(f"{rate(names[row.errors])} / {rate(names[row.requests])}", legend),
            )
        )
    shown = next((c for c in dataset.counters if row.breakdown in c.attributes), None)
    if row.breakdown and shown is not None:
        group = f"{account}, {label(row.breakdown)}"
        out.append(
            series_panel(
                f"{title_of(shown.name, prefix)} per second by {row.breakdown_label}",
                f"{described(shown)} By {dataset.attributes[row.breakdown]}.",
                rate_unit(shown.unit),
                query(rate(names[shown.name], group), f"{{{{{label(row.breakdown)}}}}} · {{{{{account}}}}}"),
            )
        )
    for c in dataset.counters:
        if c.unit == "s" and row.requests:
            out.append(
                series_panel(
                    f"{title_of(c.name, prefix)} per request (mean)",
                    f"{described(c)} Divided by the requests.",
                    "s",
                    query(f"{rate(names[c.name])} / {rate(names[row.requests])}", legend),
                )
            )
            continue
        out.append(
            series_panel(
                f"{title_of(c.name, prefix)} per second",
                described(c),
                rate_unit(c.unit),
                query(rate(names[c.name]), legend),
            )
        )
    key = ", ".join(label(a) for a in (dataset.scope_attribute, *dataset.gauge_key))
    out += [gauge_panel(m, prefix, key, sel, legend) for m in gauges]
    return out


def entity_title(attribute: str, dataset: Dataset) -> str:
    return dataset.dimension(attribute).field


def dataset_metric(dataset: Dataset, name: str) -> SourcedMetric:
    return next(c for c in dataset.counters if c.name == name)


def platform_dashboard(catalogue: Catalogue, layout: Platform) -> dashboard.Dashboard:
    up = catalogue.self_metric("otelbridge.up")
    board = new_dashboard(
        layout.title,
        layout.uid,
        f"{', '.join(layout.rows)}, exported by otelbridge; a row per dataset. "
        "Generated from otelbridge's metric catalogue.",
    ).with_variable(variable("account", "Account", prometheus_name(up.name, up.unit, False), label(ACCOUNT)))
    for dataset in catalogue.datasets:
        row = layout.rows.get(dataset.dataset)
        if row is None:
            continue
        board = board.with_row(dashboard.Row(row.title))
        for panel in platform_panels(dataset, row):
            board = board.with_panel(panel)
    return board


def described(m: SourcedMetric | AverageGauge) -> str:
    """The catalogue's description, and how to turn the metric on where the lean default has it off."""
    if m.enabled:
        return m.description
    return f"{m.description} Off by default: turn it on under `metrics:` or with `profile: full`."


def self_metric_panel(m: SelfMetric) -> timeseries.Panel:
    labels = ["instance", *(label(a) for a in m.attributes)]
    selector = f'{{{label(ACCOUNT)}=~"$account"}}' if ACCOUNT in m.attributes else ""
    legend = " · ".join(f"{{{{{name}}}}}" for name in labels)
    metric = prometheus_name(m.name, m.unit, m.kind == "counter")
    title = title_of(m.name, "otelbridge.")
    if m.kind == "counter":
        expr = f"sum by ({', '.join(labels)}) (rate({metric}{selector}[$__rate_interval]))"
        per = "share of time" if m.unit == "s" else "per second"
        return series_panel(f"{title}, {per}", m.description, rate_unit(m.unit), query(expr, legend))
    return series_panel(title, m.description, value_unit(m.unit), query(f"{metric}{selector}", legend))


def health_dashboard(catalogue: Catalogue) -> dashboard.Dashboard:
    up = catalogue.self_metric("otelbridge.up")
    board = new_dashboard(
        "otelbridge health",
        "otelbridge-health",
        "otelbridge's own telemetry, a panel per self-metric. Generated from otelbridge's metric catalogue.",
    ).with_variable(variable("account", "Account", prometheus_name(up.name, up.unit, False), label(ACCOUNT)))
    for m in catalogue.self_metrics:
        board = board.with_panel(self_metric_panel(m))
    return board


def zone_dashboard(datasets: tuple[Dataset, ...]) -> dashboard.Dashboard:
    """A row per zone dataset: each counter per second by zone, and by its first breakdown."""
    account, zone = label(ACCOUNT), label(ZONE_NAME)
    sel = f'{account}=~"$account", {zone}=~"$zone"'
    first = prometheus_name(datasets[0].counters[0].name, datasets[0].counters[0].unit, True)
    board = (
        new_dashboard(
            "Cloudflare zones",
            "otelbridge-zones",
            "Zone datasets (" + ", ".join(d.dataset for d in datasets) + "), exported by otelbridge. "
            "Generated from otelbridge's metric catalogue.",
        )
        .with_variable(variable("account", "Account", first, account))
        .with_variable(variable("zone", "Zone", f'{first}{{{account}=~"$account"}}', zone))
    )
    for d in datasets:
        board = board.with_row(dashboard.Row(d.dataset))
        for c in d.counters:
            metric = prometheus_name(c.name, c.unit, True)
            title = title_of(c.name, "cloudflare.zone.")
            for by in (ZONE_NAME, *c.attributes[:1]):
                expr = f"sum by ({label(by)}) (rate({metric}{{{sel}}}[$__rate_interval]))"
                by_what = "zone" if by == ZONE_NAME else d.dimension(by).field
                board = board.with_panel(
                    series_panel(
                        f"{title} per second by {by_what}",
                        described(c),
                        rate_unit(c.unit),
                        query(expr, f"{{{{{label(by)}}}}}"),
                    )
                )
    return board


def render(board: dashboard.Dashboard) -> str:
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def generate(catalogue: Catalogue | None = None) -> dict[str, str]:
    """File name under dashboards/ -> JSON text, for every dashboard."""
    catalogue = catalogue or load()
    out = {HEALTH_FILE: render(health_dashboard(catalogue))}
    known, layout = families(), platform()
    zones = tuple(d for d in catalogue.datasets if d.scope == "zone" and d.dataset not in known)
    for dataset in catalogue.datasets:
        if dataset in zones or dataset.dataset in layout.rows:
            continue
        if dataset.dataset not in known:
            raise KeyError(f"{FAMILIES.name}, {PLATFORM.name}: no entry for dataset {dataset.dataset}")
        family = known[dataset.dataset]
        out[family.file] = render(family_dashboard(dataset, family))
    if zones:
        out[ZONES_FILE] = render(zone_dashboard(zones))
    out[layout.file] = render(platform_dashboard(catalogue, layout))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: dashboards/)")
    args = parser.parse_args(argv)
    for name, text in generate().items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(args.out / name, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
