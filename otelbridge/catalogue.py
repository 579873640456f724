"""The metric catalogue (otelbridge/catalogue/*.yaml), loaded into typed records.

One file per Cloudflare dataset says what is exported from it: the GraphQL node and scope, the
dimensions that become attributes, the counters, gauges and their units. Instruments, the GraphQL
selection, the ledgers' shape, the generated docs and dashboards all read it, so a new dataset is
a new file and a new metric is one YAML entry. `self.yaml` holds otelbridge's own health metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

ACCOUNT = "cloud.account.id"
ZONE = "cloudflare.zone.id"
ZONE_NAME = "cloudflare.zone.name"  # zone series also carry the zone's name and its account
SCOPE_ATTRIBUTES = {"account": ACCOUNT, "zone": ZONE}
QUANTILE = "quantile"
DATASET = "cloudflare.dataset"  # the attribute naming a dataset in otelbridge's own metrics
PROFILES = ("lean", "full")
SELF_FILE = "self.yaml"


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Dimension:
    attribute: str  # the point attribute, OTel style (faas.name)
    field: str  # the GraphQL dimension (scriptName)
    description: str
    optional: bool = False  # a counter may leave it out (summed over it)
    default: bool = True  # False: off unless configured per metric (cardinality), even with `full`
    values: int | None = None  # how many values it takes, when known (the docs' cost table)
    type: Literal["string", "integer"] = "string"  # the schema's; integers become decimal strings


@dataclass(frozen=True)
class SourcedMetric:
    """A metric read from one Cloudflare field: a counter from `count` or `sum { field }`, a quantile
    gauge from `quantiles { fieldP50 ... }`, or a level gauge from `<aggregate> { field }`."""

    name: str
    field: str  # the field under its aggregate; `count` for the row count
    unit: str
    description: str
    divisor: int = 1  # API unit -> exported unit, e.g. 1000000 for microseconds -> seconds
    api_unit: str = ""
    enabled: bool = True  # exported by default (profile lean); every counter is counted either way
    attributes: tuple[str, ...] = ()  # optional attributes exported (counters only)
    aggregate: str = "sum"  # sum | count (counters); quantiles; max, min, avg... (levels)
    type: Literal["integer", "float"] = "float"
    stability: str = "development"

    @property
    def source(self) -> str:
        return "count" if self.aggregate == "count" else f"{self.aggregate}.{self.field}"

    def exported(self, value: float) -> float:
        """The API's value in the exported unit: one correctly rounded division (ints stay ints)."""
        return value / self.divisor if self.divisor != 1 else value


@dataclass(frozen=True)
class AverageGauge:
    name: str
    field: str  # name under `avg { }`
    unit: str
    description: str
    enabled: bool = True
    stability: str = "development"


@dataclass(frozen=True)
class MetricChoice:
    """A user's override of one metric's defaults: None keeps the catalogue's (or profile's) choice."""

    enabled: bool | None = None
    attributes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DatasetChoice:
    """A user's override of one dataset: None keeps the catalogue's choice."""

    enabled: bool | None = None
    dimensions: tuple[str, ...] | None = None  # the attributes counted (the counter key)


@dataclass(frozen=True)
class SelfMetric:
    name: str
    kind: Literal["counter", "gauge"]
    unit: str
    attributes: tuple[str, ...]
    description: str


@dataclass(frozen=True, eq=False)  # hashed by identity: it is loaded once
class Dataset:
    """The catalogue of one dataset (one file)."""

    dataset: str  # its name: the file's, the aliases' prefix and the state's key
    scope: Literal["account", "zone"]
    time_filter: str  # the time dimension filtered on: datetime, datetimeMinute, ...
    dimensions: tuple[Dimension, ...]
    counter_key: tuple[str, ...]  # attributes grouping the sums: the ledger's series key, in order
    page_key: str  # attribute whose `_geq` continues a full page
    gauge_key: tuple[str, ...]  # attributes grouping the gauges
    counters: tuple[SourcedMetric, ...]
    quantile_gauges: tuple[SourcedMetric, ...]
    average_gauges: tuple[AverageGauge, ...]
    level_gauges: tuple[SourcedMetric, ...]
    available_quantiles: dict[str, str]  # "0.99" -> "P99"
    default_quantiles: tuple[str, ...]
    enabled: bool = True
    stability: str = "development"
    file: str = ""
    node: str = ""  # the GraphQL node, when it is not named like the dataset
    level_window: int = 0  # minutes a group's last level stays exported when answers no longer have it
    order: int = 100  # datasets are listed (docs, dashboards, status page) by order, then name
    switched_off: bool = False  # turned off in the `datasets` setting: never polled, whatever the profile

    @property
    def graphql_node(self) -> str:
        return self.node or self.dataset

    @property
    def scope_attribute(self) -> str:
        return SCOPE_ATTRIBUTES[self.scope]

    @property
    def scope_attributes(self) -> tuple[str, ...]:
        """The attributes every series of the dataset carries for its scope."""
        return (ZONE, ZONE_NAME, ACCOUNT) if self.scope == "zone" else (ACCOUNT,)

    @property
    def attributes(self) -> dict[str, str]:
        """Point attributes and what they hold, scope first."""
        out = {self.scope_attribute: f"the Cloudflare {self.scope} tag"}
        if self.scope == "zone":
            out[ZONE_NAME] = "the zone's name (from the zone listing)"
            out[ACCOUNT] = "the Cloudflare account tag owning the zone"
        out.update({d.attribute: d.description for d in self.dimensions})
        if self.quantile_gauges:
            out[QUANTILE] = 'the quantile of the distribution over the quantile window, e.g. "0.99"'
        return out

    def dimension(self, attribute: str) -> Dimension:
        return next(d for d in self.dimensions if d.attribute == attribute)

    @property
    def optional(self) -> tuple[str, ...]:
        """Key attributes a counter may leave out, in key order."""
        return tuple(a for a in self.counter_key if self.dimension(a).optional)

    @property
    def fields(self) -> tuple[str, ...]:
        """The ledger's vector: one value per counter, in catalogue order."""
        return tuple(c.field for c in self.counters)

    @property
    def float_fields(self) -> frozenset[str]:
        return frozenset(c.field for c in self.counters if c.type == "float")

    @property
    def exported_counters(self) -> tuple[tuple[int, SourcedMetric], ...]:
        """Enabled counters with their position in the ledger's vector (which holds every counter)."""
        return tuple((i, c) for i, c in enumerate(self.counters) if c.enabled)

    @property
    def gauges(self) -> bool:
        return bool(self.quantile_gauges or self.average_gauges or self.level_gauges)

    @property
    def metric_names(self) -> tuple[str, ...]:
        sourced = (*self.counters, *self.quantile_gauges, *self.level_gauges)
        return tuple(m.name for m in sourced) + tuple(a.name for a in self.average_gauges)

    def default_attributes(self, full: bool) -> tuple[str, ...]:
        return tuple(a for a in self.optional if full and self.dimension(a).default)

    def select(self, profile: str = "lean", choices: Mapping[str, MetricChoice] | None = None) -> Dataset:
        """The catalogue as configured: `full` turns every metric and attribute on (but attributes
        marked `default: false`), then `choices` override single metrics. Counters all stay (the
        ledger counts every field); only their `enabled` flag changes. Gauges that are off are left
        out, so they are not even queried."""
        choices = choices or {}
        full = profile == "full"

        def resolve(metric: Any) -> Any:
            choice = choices.get(metric.name, MetricChoice())
            enabled = choice.enabled if choice.enabled is not None else (True if full else metric.enabled)
            changes: dict[str, Any] = {"enabled": enabled}
            if isinstance(metric, SourcedMetric) and metric in self.counters:
                chosen = choice.attributes
                if chosen is None:
                    chosen = self.default_attributes(True) if full else metric.attributes
                changes["attributes"] = tuple(a for a in self.optional if a in chosen)
            return replace(metric, **changes)

        def kept(metrics: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(m for m in (resolve(m) for m in metrics) if m.enabled)

        counters = tuple(resolve(c) for c in self.counters)
        # An attribute off by default (cardinality) is not even grouped by until a counter has it:
        # Cloudflare's answers and the ledger stay as small as what is exported.
        chosen = {a for c in counters for a in c.attributes}
        quantile_gauges, average_gauges = kept(self.quantile_gauges), kept(self.average_gauges)
        level_gauges = kept(self.level_gauges)
        exported = any(c.enabled for c in counters) or bool(quantile_gauges or average_gauges or level_gauges)
        # A dataset off by default is polled with `full`, or once one of its metrics is configured
        # (other than turned off).
        wanted = not self.switched_off and (
            self.enabled
            or full
            or any(choices[n].enabled is not False for n in self.metric_names if n in choices)
        )
        return replace(
            self,
            counter_key=tuple(a for a in self.counter_key if self.dimension(a).default or a in chosen),
            counters=counters,
            quantile_gauges=quantile_gauges,
            average_gauges=average_gauges,
            level_gauges=level_gauges,
            enabled=wanted and exported,  # a dataset none of whose metrics is exported is not polled
        )

    def with_dimensions(self, attributes: tuple[str, ...]) -> Dataset:
        """The dataset counted by these attributes instead of its `counter_key`. The page key stays
        first; an attribute added is exported by every counter (it was asked for), one left out is
        no longer counted. Unknown attributes raise KeyError naming the first."""
        known = {d.attribute for d in self.dimensions}
        unknown = [a for a in attributes if a not in known]
        if unknown:
            raise KeyError(unknown[0])
        key = (self.page_key, *dict.fromkeys(a for a in attributes if a != self.page_key))
        added = set(key) - set(self.counter_key)
        dimensions = tuple(replace(d, optional=False) if d.attribute in added else d for d in self.dimensions)
        optional = {d.attribute for d in dimensions if d.optional}
        counters = tuple(
            replace(c, attributes=tuple(a for a in c.attributes if a in key and a in optional))
            for c in self.counters
        )
        return replace(self, dimensions=dimensions, counter_key=key, counters=counters)

    def quantile_field(self, gauge: SourcedMetric, quantile: str) -> str:
        return gauge.field + self.available_quantiles[quantile]


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Every dataset's catalogue, and otelbridge's own metrics."""

    datasets: tuple[Dataset, ...]
    self_metrics: tuple[SelfMetric, ...]

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.dataset == name:
                return d
        raise KeyError(name)

    @property
    def enabled(self) -> tuple[Dataset, ...]:
        return tuple(d for d in self.datasets if d.enabled)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(n for d in self.datasets for n in d.metric_names)

    @property
    def available_quantiles(self) -> dict[str, str]:
        return {q: s for d in self.datasets for q, s in d.available_quantiles.items()}

    @property
    def default_quantiles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for d in self.datasets for q in d.default_quantiles))

    def optional_attributes(self, metric: str) -> tuple[str, ...]:
        """The attributes a counter may be configured with (none for gauges)."""
        for d in self.datasets:
            if metric in {c.name for c in d.counters}:
                return d.optional
        return ()

    def select(self, profile: str = "lean", choices: Mapping[str, MetricChoice] | None = None) -> Catalogue:
        choices = choices or {}
        unknown = set(choices) - set(self.metric_names)
        if unknown:
            raise KeyError(sorted(unknown)[0])
        return replace(self, datasets=tuple(d.select(profile, choices) for d in self.datasets))

    def configure(self, choices: Mapping[str, DatasetChoice]) -> Catalogue:
        """Datasets turned on or off and counted by other dimensions (the `datasets` setting, checked
        against the whole catalogue when read); choices for datasets this one lacks are ignored."""
        out = []
        for d in self.datasets:
            choice = choices.get(d.dataset, DatasetChoice())
            if choice.dimensions is not None:
                d = d.with_dimensions(choice.dimensions)
            if choice.enabled is not None:
                d = replace(d, enabled=choice.enabled, switched_off=not choice.enabled)
            out.append(d)
        return replace(self, datasets=tuple(out))

    def self_metric(self, name: str) -> SelfMetric:
        for metric in self.self_metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)


class _Reader:
    """Typed access to one YAML mapping, with errors naming the file and the key."""

    def __init__(self, file: str, where: str, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise CatalogueError(f"{file}: {where or 'the file'} must be a mapping")
        self.file, self.where, self.raw = file, where, raw

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, message: str) -> CatalogueError:
        return CatalogueError(f"{self.file}: {self._key(key)}: {message}")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {kind.__name__}, got {value!r}")
        return value

    def entries(self, key: str) -> list[_Reader]:
        items = self.get(key, list, [])
        return [_Reader(self.file, f"{self._key(key)}[{i}]", item) for i, item in enumerate(items)]

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        items = self.get(key, list, default)
        if not all(isinstance(i, str) for i in items):
            raise self.error(key, "expected a list of strings")
        return tuple(items)

    def check_keys(self, known: set[str]) -> None:
        unknown = sorted(set(self.raw) - known)
        if unknown:
            raise self.error(unknown[0], f"unknown key (known: {', '.join(sorted(known))})")


_METRIC_KEYS = {"name", "unit", "description", "divisor", "api_unit", "enabled", "stability"}


def _metric(r: _Reader, extra: set[str]) -> dict[str, Any]:
    r.check_keys(_METRIC_KEYS | extra)
    divisor = r.get("divisor", int, 1)
    if divisor < 1:
        raise r.error("divisor", "must be a positive integer")
    return {
        "name": r.get("name", str),
        "unit": r.get("unit", str),
        "description": r.get("description", str),
        "divisor": divisor,
        "api_unit": r.get("api_unit", str, ""),
        "enabled": r.get("enabled", bool, True),
        "stability": r.get("stability", str, "development"),
    }


def _value_type(r: _Reader, default: str) -> Literal["integer", "float"]:
    value = r.get("type", str, default)
    if value not in ("integer", "float"):
        raise r.error("type", f"expected integer or float, got {value!r}")
    return "integer" if value == "integer" else "float"


def _counter(r: _Reader, optional: tuple[str, ...], defaults: tuple[str, ...]) -> SourcedMetric:
    source = r.get("source", str)
    aggregate, _, field = source.partition(".")
    if source != "count" and (aggregate != "sum" or not field):
        raise r.error("source", f"expected `count` or `sum.<field>`, got {source!r}")
    attributes = r.strings("attributes", defaults)
    unknown = set(attributes) - set(optional)
    if unknown:
        raise r.error("attributes", f"{sorted(unknown)} are not optional dimensions ({list(optional)})")
    return SourcedMetric(
        **_metric(r, {"source", "type", "attributes"}),
        field=field or "count",
        aggregate=aggregate,
        type=_value_type(r, "integer" if source == "count" else "float"),
        attributes=attributes,
    )


def _level(r: _Reader) -> SourcedMetric:
    source = r.get("source", str)
    aggregate, _, field = source.partition(".")
    if not field:
        raise r.error("source", f"expected `<aggregate>.<field>` (e.g. max.payloadSize), got {source!r}")
    return SourcedMetric(
        **_metric(r, {"source", "type", "kind"}),
        field=field,
        aggregate=aggregate,
        type=_value_type(r, "float"),
    )


def _quantile(r: _Reader) -> SourcedMetric:
    return SourcedMetric(
        **_metric(r, {"field", "type"}), field=r.get("field", str), type=_value_type(r, "float")
    )


def _average(r: _Reader) -> AverageGauge:
    common = _metric(r, {"field"})
    if common["divisor"] != 1 or common["api_unit"]:
        raise r.error("divisor", "average gauges are exported in the API's unit")
    del common["divisor"], common["api_unit"]
    return AverageGauge(**common, field=r.get("field", str))


def _dimension(r: _Reader) -> Dimension:
    r.check_keys({"attribute", "field", "description", "optional", "default", "values", "type"})
    kind = r.get("type", str, "string")
    if kind not in ("string", "integer"):
        raise r.error("type", f"expected string or integer, got {kind!r}")
    optional, default = r.get("optional", bool, False), r.get("default", bool, True)
    if not default and not optional:
        raise r.error("default", "only an optional dimension can be off by default")
    return Dimension(
        attribute=r.get("attribute", str),
        field=r.get("field", str),
        description=r.get("description", str),
        optional=optional,
        default=default,
        values=r.get("values", int, None),
        type="integer" if kind == "integer" else "string",
    )


DATASET_KEYS = {
    "dataset", "node", "scope", "time_filter", "enabled", "stability", "dimensions", "counter_key",
    "page_key", "gauge_key", "counters", "quantile_gauges", "average_gauges", "level_gauges", "quantiles",
    "default_quantiles", "level_window", "order",
}  # fmt: skip


def parse_dataset(text: str, file: str = "<catalogue>") -> Dataset:
    r = _Reader(file, "", yaml.safe_load(text))
    r.check_keys(DATASET_KEYS)
    scope = r.get("scope", str)
    if scope not in SCOPE_ATTRIBUTES:
        raise r.error("scope", f"expected account or zone, got {scope!r}")
    dimensions = tuple(_dimension(d) for d in r.entries("dimensions"))
    known = {d.attribute for d in dimensions}
    counter_key, gauge_key = r.strings("counter_key"), r.strings("gauge_key", ())
    for key, attributes in (("counter_key", counter_key), ("gauge_key", gauge_key)):
        if set(attributes) - known:
            raise r.error(
                key, f"unknown dimensions {sorted(set(attributes) - known)} (known: {sorted(known)})"
            )
    page_key = r.get("page_key", str)
    # Rows are ordered by the key, so a full page continues from its last page key value.
    if counter_key[:1] != (page_key,) or gauge_key[:1] not in ((), (page_key,)):
        raise r.error("page_key", f"{page_key!r} must be the first of counter_key and gauge_key")
    if next(d for d in dimensions if d.attribute == page_key).type != "string":
        raise r.error("page_key", f"{page_key!r} must be a string dimension (pages continue by name)")
    optional = tuple(d.attribute for d in dimensions if d.optional and d.attribute in counter_key)
    defaults = tuple(a for a in optional if next(d for d in dimensions if d.attribute == a).default)
    quantiles = r.get("quantiles", dict, {})
    dataset = Dataset(
        dataset=r.get("dataset", str),
        scope="account" if scope == "account" else "zone",
        time_filter=r.get("time_filter", str),
        dimensions=dimensions,
        counter_key=counter_key,
        page_key=page_key,
        gauge_key=gauge_key,
        counters=tuple(_counter(c, optional, defaults) for c in r.entries("counters")),
        quantile_gauges=tuple(_quantile(g) for g in r.entries("quantile_gauges")),
        average_gauges=tuple(_average(a) for a in r.entries("average_gauges")),
        level_gauges=tuple(_level(g) for g in r.entries("level_gauges")),
        available_quantiles={str(k): str(v) for k, v in quantiles.items()},
        default_quantiles=tuple(str(q) for q in r.get("default_quantiles", list, [])),
        enabled=r.get("enabled", bool, True),
        stability=r.get("stability", str, "development"),
        file=file,
        node=r.get("node", str, ""),
        level_window=r.get("level_window", int, 0),
        order=r.get("order", int, 100),
    )
    unknown = set(dataset.default_quantiles) - set(dataset.available_quantiles)
    if unknown:
        raise r.error("default_quantiles", f"not offered by Cloudflare: {sorted(unknown)}")
    if dataset.quantile_gauges and not dataset.default_quantiles:
        raise r.error("default_quantiles", "missing (the dataset has quantile gauges)")
    if dataset.gauges and not gauge_key:
        raise r.error("gauge_key", "missing (the dataset has gauges)")
    if file.endswith(".yaml") and file.rsplit("/", 1)[-1] != f"{dataset.dataset}.yaml":
        raise r.error("dataset", f"{dataset.dataset!r} must be the file's name")
    if not dataset.counters and not dataset.level_gauges:
        raise r.error("counters", "a dataset needs a counter, or level gauges")
    if dataset.level_window and not dataset.level_gauges:
        raise r.error("level_window", "only for a dataset with level gauges")
    return dataset


def parse_self(text: str, file: str = SELF_FILE) -> tuple[SelfMetric, ...]:
    r = _Reader(file, "", yaml.safe_load(text))
    r.check_keys({"self_metrics"})
    out = []
    for m in r.entries("self_metrics"):
        m.check_keys({"name", "kind", "unit", "attributes", "description"})
        kind = m.get("kind", str)
        if kind not in ("counter", "gauge"):
            raise m.error("kind", f"expected counter or gauge, got {kind!r}")
        out.append(
            SelfMetric(
                name=m.get("name", str),
                kind="counter" if kind == "counter" else "gauge",
                unit=m.get("unit", str),
                attributes=m.strings("attributes"),
                description=m.get("description", str),
            )
        )
    return tuple(out)


def combine(datasets: tuple[Dataset, ...], self_metrics: tuple[SelfMetric, ...]) -> Catalogue:
    """The whole catalogue; metric names must be unique across files."""
    seen: dict[str, str] = {m.name: SELF_FILE for m in self_metrics}
    names = set()
    for d in datasets:
        if d.dataset in names:
            raise CatalogueError(f"{d.file}: dataset: {d.dataset} is described twice")
        names.add(d.dataset)
        for name in d.metric_names:
            if name in seen:
                raise CatalogueError(f"{d.file}: metric {name} is also defined in {seen[name]}")
            seen[name] = d.file
    return Catalogue(datasets=datasets, self_metrics=self_metrics)


@cache
def load() -> Catalogue:
    folder = resources.files("otelbridge").joinpath("catalogue")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    texts = {f.name: f.read_text(encoding="utf-8") for f in files if f.name != SELF_FILE}
    parsed = (parse_dataset(text, f"catalogue/{name}") for name, text in texts.items())
    datasets = tuple(sorted(parsed, key=lambda d: (d.order, d.dataset)))
    return combine(datasets, parse_self(folder.joinpath(SELF_FILE).read_text(encoding="utf-8")))
