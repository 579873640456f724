"""The simulated API's ground truth of what a backfill (and the live bridge after it) exports.

For datasets on the Workers node (the real catalogue's, and the test-only per-script one): each
exported counter's exact total in the exported unit, per series as Prometheus names it, from
`Traffic.series_totals` (whose float sums are exact: the simulator's float values are dyadic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from fractions import Fraction

from otelbridge.catalogue import Dataset
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Traffic
from otelbridge.snapshot import kept_positions

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels
Exact = dict[SeriesKey, Fraction]
_GROUP = ("scriptName", "status")  # the key of Traffic.series_totals


def exact_totals(
    traffic: Traffic,
    datasets: Sequence[Dataset],
    accounts: Iterable[str],
    start: datetime,
    end: datetime,
    as_of: datetime | None = None,
) -> Exact:
    out: Exact = {}
    for account in accounts:
        groups = traffic.series_totals(account, start, end, as_of=as_of)
        for dataset in datasets:
            positions = [_GROUP.index(dataset.dimension(a).field) for a in dataset.counter_key]
            for _, counter in dataset.exported_counters:
                name = prometheus_name(counter.name, counter.unit, True)
                kept = kept_positions(dataset, counter)
                for group, sums in groups.items():
                    labels = {dataset.scope_attribute: account}
                    labels.update({dataset.counter_key[p]: group[positions[p]] for p in kept})
                    key = (name, tuple(sorted((k.replace(".", "_"), v) for k, v in labels.items())))
                    out[key] = out.get(key, Fraction(0)) + Fraction(sums[counter.field]) / counter.divisor
    return out


def add(a: Exact, b: Exact) -> Exact:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, Fraction(0)) + value
    return out


def increases(before: Exact, after: Exact) -> dict[SeriesKey, float]:
    """What increase() over a window gives from exact cumulative totals at its two ends: the
    difference of the two exported (once rounded) values."""
    return {key: float(value) - float(before.get(key, Fraction(0))) for key, value in after.items()}
