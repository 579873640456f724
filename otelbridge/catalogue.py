"""The metric catalogue (catalogue.yaml), loaded into typed records.

The catalogue is the single description of what is exported: instruments, the GraphQL
selection and the generated metric docs all read it, so a new metric is one YAML entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

ACCOUNT = "cloud.account.id"
SCRIPT = "faas.name"
STATUS = "cloudflare.workers.status"
QUANTILE = "quantile"
BREAKDOWN = (STATUS,)  # counter attributes beyond account and script, each optional per counter
PROFILES = ("lean", "full")


@dataclass(frozen=True)
class SourcedMetric:
    """A metric read from one Cloudflare field: a counter from `sum { field }`, or a quantile gauge
    from `quantiles { fieldP50 ... }`."""

    name: str
    field: str
    unit: str
    description: str
    divisor: int = 1  # API unit -> exported unit, e.g. 1000000 for microseconds -> seconds
    api_unit: str = ""
    enabled: bool = True  # exported by default (profile lean); every counter is counted either way
    attributes: tuple[str, ...] = BREAKDOWN  # breakdown attributes exported (counters only)

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


@dataclass(frozen=True)
class MetricChoice:
    """A user's override of one metric's defaults: None keeps the catalogue's (or profile's) choice."""

    enabled: bool | None = None
    attributes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SelfMetric:
    name: str
    kind: Literal["counter", "gauge"]
    unit: str
    attributes: tuple[str, ...]
    description: str


@dataclass(frozen=True, eq=False)  # hashed by identity: it is loaded once
class Catalogue:
    dataset: str
    attributes: dict[str, str]
    counters: tuple[SourcedMetric, ...]
    quantile_gauges: tuple[SourcedMetric, ...]
    average_gauges: tuple[AverageGauge, ...]
    available_quantiles: dict[str, str]  # "0.99" -> "P99"
    default_quantiles: tuple[str, ...]
    self_metrics: tuple[SelfMetric, ...]

    @property
    def exported_counters(self) -> tuple[tuple[int, SourcedMetric], ...]:
        """Enabled counters with their position in the ledger's vector (which holds every counter)."""
        return tuple((i, c) for i, c in enumerate(self.counters) if c.enabled)

    @property
    def metric_names(self) -> tuple[str, ...]:
        sourced = (*self.counters, *self.quantile_gauges)
        return tuple(m.name for m in sourced) + tuple(a.name for a in self.average_gauges)

    def select(self, profile: str = "lean", choices: Mapping[str, MetricChoice] | None = None) -> Catalogue:
        """The catalogue as configured: `full` turns every metric and attribute on, then `choices`
        override single metrics. Counters all stay (the ledger counts every field); only their
        `enabled` flag changes. Gauges that are off are left out, so they are not even queried."""
        choices = choices or {}
        unknown = set(choices) - set(self.metric_names)
        if unknown:
            raise KeyError(sorted(unknown)[0])

        def resolve(metric: Any) -> Any:
            choice = choices.get(metric.name, MetricChoice())
            full = profile == "full"
            changes: dict[str, Any] = {
                "enabled": choice.enabled
                if choice.enabled is not None
                else (True if full else metric.enabled)
            }
            if isinstance(metric, SourcedMetric):
                chosen = (
                    choice.attributes
                    if choice.attributes is not None
                    else (BREAKDOWN if full else metric.attributes)
                )
                changes["attributes"] = tuple(a for a in BREAKDOWN if a in chosen)
            return replace(metric, **changes)

        counters = tuple(resolve(c) for c in self.counters)
        gauges = tuple(g for g in (resolve(g) for g in self.quantile_gauges) if g.enabled)
        averages = tuple(a for a in (resolve(a) for a in self.average_gauges) if a.enabled)
        return replace(self, counters=counters, quantile_gauges=gauges, average_gauges=averages)

    def quantile_field(self, gauge: SourcedMetric, quantile: str) -> str:
        return gauge.field + self.available_quantiles[quantile]

    def self_metric(self, name: str) -> SelfMetric:
        for metric in self.self_metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)


def _records(cls: type[Any], entries: list[dict[str, Any]]) -> tuple[Any, ...]:
    out = []
    for entry in entries:
        if "attributes" in entry:
            entry = {**entry, "attributes": tuple(entry["attributes"])}
            unknown = set(entry["attributes"]) - set(BREAKDOWN) if cls is SourcedMetric else set()
            if unknown:
                raise ValueError(f"{entry['name']}: unknown attributes {sorted(unknown)}")
        out.append(cls(**entry))
    return tuple(out)


def parse(text: str) -> Catalogue:
    raw = yaml.safe_load(text)
    catalogue = Catalogue(
        dataset=raw["dataset"],
        attributes=dict(raw["attributes"]),
        counters=_records(SourcedMetric, raw["counters"]),
        quantile_gauges=_records(SourcedMetric, raw["quantile_gauges"]),
        average_gauges=_records(AverageGauge, raw["average_gauges"]),
        available_quantiles={str(k): str(v) for k, v in raw["available_quantiles"].items()},
        default_quantiles=tuple(str(q) for q in raw["default_quantiles"]),
        self_metrics=_records(SelfMetric, raw["self_metrics"]),
    )
    unknown = set(catalogue.default_quantiles) - set(catalogue.available_quantiles)
    if unknown:
        raise ValueError(f"default_quantiles not offered by Cloudflare: {sorted(unknown)}")
    return catalogue


@cache
def load() -> Catalogue:
    return parse(resources.files("otelbridge").joinpath("catalogue.yaml").read_text(encoding="utf-8"))
