"""Zone series as tests read them: what otelbridge exported, and what the simulator's ground truth says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from otelbridge.bridge import Bridge
from otelbridge.catalogue import Dataset
from otelbridge.docs import prometheus_name
from otelbridge.simulator import Traffic
from otelbridge.snapshot import kept_positions
from tests.metrics_text import SeriesValues

ZONE_PREFIX = "cloudflare_zone_"


def samples(bridge: Bridge, prefix: str) -> SeriesValues:
    """Every sample on the /metrics page whose name starts with `prefix`, with all its labels."""
    out: SeriesValues = {}
    for family in text_string_to_metric_families(bridge.page.page.body.decode()):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in out, f"duplicate series {key}"
                out[key] = sample.value
    return out


def zone_counters(bridge: Bridge) -> SeriesValues:
    """Every zone counter series on the /metrics page."""
    return {k: v for k, v in samples(bridge, ZONE_PREFIX).items() if k[0].endswith("_total")}


def world_zones(traffic: Traffic) -> dict[str, tuple[str, str, frozenset[str]]]:
    """zone tag -> (name, account tag, datasets its plan lacks), as the simulated API lists them."""
    out = {}
    for account in traffic.accounts:
        for tag in traffic.zones(account):
            found = traffic.analytics.zone(tag)
            assert found is not None
            out[tag] = (found[1].name, account.tag, found[1].disabled)
    return out


def expected_zone_counters(
    traffic: Traffic,
    bridge: Bridge,
    starts: dict[str, datetime],
    ends: dict[str, datetime],
    as_of: datetime,
    zones: set[str] | None = None,
) -> SeriesValues:
    """The simulator's totals over [starts[zone], ends[zone]) for each exported zone counter,
    grouped by the attributes the counter carries, for the zones given (default: all listed)."""
    return zone_truth(traffic, bridge.zone_datasets, starts, ends, as_of, zones)


def zone_truth(
    traffic: Traffic,
    datasets: Sequence[Dataset],
    starts: Mapping[str, datetime],
    ends: Mapping[str, datetime],
    as_of: datetime,
    zones: set[str] | None = None,
) -> SeriesValues:
    """expected_zone_counters of the given zone datasets (those a zone's plan lacks left out)."""
    out: SeriesValues = {}
    for tag, (name, account, disabled) in world_zones(traffic).items():
        if zones is not None and tag not in zones:
            continue
        for dataset in datasets:
            if dataset.dataset in disabled:
                continue
            for _, counter in dataset.exported_counters:
                kept = [dataset.counter_key[p] for p in kept_positions(dataset, counter)]
                fields = [dataset.dimension(a).field for a in kept]
                truth = traffic.analytics.totals(
                    dataset.graphql_node, tag, starts[tag], ends[tag], by=fields, as_of=as_of
                )
                metric = prometheus_name(counter.name, counter.unit, True)
                for key, aggregates in truth.items():
                    labels = {
                        "cloudflare_zone_id": tag,
                        "cloudflare_zone_name": name,
                        "cloud_account_id": account,
                        **{a.replace(".", "_"): str(v) for a, v in zip(kept, key, strict=True)},
                    }
                    value = (
                        aggregates["count"]
                        if counter.aggregate == "count"
                        else aggregates["sum"][counter.field]
                    )
                    out[(metric, tuple(sorted(labels.items())))] = value
    return out
