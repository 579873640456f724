"""The metric catalogue (catalogue.yaml), loaded into typed records.

The catalogue is the single description of what is exported: instruments, the GraphQL
selection and the generated metric docs all read it, so a new metric is one YAML entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

ACCOUNT = "cloud.account.id"
SCRIPT = "faas.name"
STATUS = "cloudflare.workers.status"
QUANTILE = "quantile"


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

    def exported(self, value: float) -> float:
        """The API's value in the exported unit: one correctly rounded division (ints stay ints)."""
        return value / self.divisor if self.divisor != 1 else value


@dataclass(frozen=True)
class AverageGauge:
    name: str
    field: str  # name under `avg { }`
    unit: str
    description: str


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
