"""What one build() publishes: Workers series in exported units, the series cap, self-metrics."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from otelbridge import snapshot
from otelbridge.catalogue import ACCOUNT, QUANTILE, Catalogue, Dataset
from otelbridge.catalogue import load as load_catalogue
from otelbridge.cloudflare.answers import QuantileRow
from otelbridge.ledger import Ledger, Rows, Vector
from otelbridge.windows import MINUTE, Timing, plan
from tests.datasets import STATUS, WORKERS, workers

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TIMING = Timing(delay=MINUTE, settle=timedelta(minutes=5), quantile_window=MINUTE)
CATALOGUE = load_catalogue()
W = workers(CATALOGUE)
SCRIPT = W.dimension(W.page_key).attribute
FIELDS = W.fields
FLOATS = ("duration",)
BIG = 1e16  # 1e16 + 1.0 + 1.0 is 1e16 summed left to right, 1e16 + 2 summed exactly
Attrs = frozenset[tuple[str, str]]


def vector(requests: int, duration: float) -> Vector:
    """Every counter field; requests and duration as given, the others derived so no two agree."""
    base = {f: requests * (i + 2) for i, f in enumerate(FIELDS)}
    return tuple(duration if f == "duration" else base[f] for f in FIELDS)


def ledger(rows: Rows) -> Ledger:
    out = Ledger.starting_at(FIELDS, T0, floats=FLOATS)
    out.apply(plan(T0 + timedelta(minutes=10), out.settled, out.counted, TIMING), rows, {})
    return out


ROWS: dict[str, Rows] = {
    "acc-1": {
        ("api", "success"): vector(7, BIG),
        ("api", "clientDisconnected"): vector(3, 1.0),
        ("api", "scriptThrewException"): vector(1, 1.0),
        ("cron", "success"): vector(5, 0.1),
    },
    "acc-2": {("api", "success"): vector(11, 0.25)},
}
QUANTILES = ("0.5", "0.99")


def quantile_row(seed: float) -> QuantileRow:
    gauges = W.select("full").quantile_gauges
    values = {
        W.quantile_field(g, q): seed * (i + 1) * (j + 3)
        for i, g in enumerate(gauges)
        for j, q in enumerate(QUANTILES)
    }
    return QuantileRow(values, {a.field: seed + 0.5 for a in W.average_gauges})


HEALTH = {
    "acc-1": snapshot.AccountHealth(
        True, 1.5, {WORKERS: {("api",): quantile_row(10.0), ("cron",): quantile_row(20.0)}}
    ),
    "acc-2": snapshot.AccountHealth(False, 2.5, {WORKERS: {("api",): quantile_row(30.0)}}),
}


def build(
    catalogue: Catalogue,
    max_series: int = 10_000,
    process: snapshot.Health | None = None,
    now: datetime | None = None,
    ledgers: dict[str, Ledger] | None = None,
) -> snapshot.Snapshot:
    ledgers = ledgers if ledgers is not None else {a: ledger(r) for a, r in ROWS.items()}
    return snapshot.build(
        catalogue,
        QUANTILES,
        {account: {WORKERS: one} for account, one in ledgers.items()},
        HEALTH,
        process or snapshot.Health(),
        now or T0 + timedelta(minutes=10),
        max_series,
    )


def observed(snap: snapshot.Snapshot, name: str) -> dict[Attrs, float]:
    points = snap.observe(name)
    out = {frozenset((p.attributes or {}).items()): p.value for p in points}
    assert len(out) == len(points), f"{name}: two points with the same attributes"
    return out


def key(**attrs: str) -> Attrs:
    names = {"account": ACCOUNT, "script": SCRIPT, "status": STATUS, "quantile": QUANTILE}
    return frozenset((names[k], v) for k, v in attrs.items())


@pytest.mark.parametrize("profile", ["lean", "full"])
def test_counters_in_exported_units_by_status_or_summed_per_script(profile: str) -> None:
    catalogue = CATALOGUE.select(profile)
    snap = build(catalogue)
    for i, counter in workers(catalogue).exported_counters:
        expected: dict[Attrs, float] = {}
        for account, rows in ROWS.items():
            if STATUS in counter.attributes:
                for (script, status), v in rows.items():
                    expected[key(account=account, script=script, status=status)] = v[i] / counter.divisor
            else:
                per_script: dict[str, list[float]] = {}
                for (script, _), v in rows.items():
                    per_script.setdefault(script, []).append(v[i])
                for script, values in per_script.items():
                    expected[key(account=account, script=script)] = math.fsum(values) / counter.divisor
        assert observed(snap, counter.name) == expected, counter.name
    disabled = {c.name for c in workers(catalogue).counters if not c.enabled}
    assert all(not snap.observe(name) for name in disabled)
    if profile == "lean":  # the float field summed over statuses exactly, rounded once
        duration = next(c.name for c in workers(catalogue).counters if c.field == "duration")
        assert observed(snap, duration)[key(account="acc-1", script="api")] == BIG + 2


def test_quantile_and_average_gauges_per_script_and_quantile() -> None:
    catalogue = CATALOGUE.select("full")
    snap = build(catalogue)
    w = workers(catalogue)
    for gauge in w.quantile_gauges:
        expected = {
            key(account=account, script=script, quantile=q): row.values[w.quantile_field(gauge, q)]
            / gauge.divisor
            for account, health in HEALTH.items()
            for (script,), row in health.quantiles[WORKERS].items()
            for q in QUANTILES
        }
        assert observed(snap, gauge.name) == expected, gauge.name
    for avg in w.average_gauges:
        expected = {
            key(account=account, script=script): row.averages[avg.field]
            for account, health in HEALTH.items()
            for (script,), row in health.quantiles[WORKERS].items()
        }
        assert observed(snap, avg.name) == expected, avg.name


def workers_counts(snap: snapshot.Snapshot, catalogue: Catalogue) -> Counter[str]:
    w: Dataset = workers(catalogue)
    names = [c.name for _, c in w.exported_counters]
    names += [g.name for g in w.quantile_gauges] + [a.name for a in w.average_gauges]
    return Counter({name: len(snap.observe(name)) for name in names})


@pytest.mark.parametrize("profile", ["lean", "full"])
def test_series_and_dropped_series_follow_the_cap(profile: str) -> None:
    catalogue = CATALOGUE.select(profile)
    uncapped = workers_counts(build(catalogue), catalogue)
    for cap in (10_000, 3, 2, 1):
        snap = build(catalogue, max_series=cap)
        counts = workers_counts(snap, catalogue)
        assert counts == Counter({name: min(n, cap) for name, n in uncapped.items()})
        dropped = sum(max(0, n - cap) for n in uncapped.values())
        assert (snap.series, snap.dropped) == (counts.total(), dropped), cap
        assert observed(snap, "otelbridge.series") == {frozenset(): counts.total()}
        assert observed(snap, "otelbridge.series.dropped") == {frozenset(): dropped}
    assert snap.dropped > 0 and max(uncapped.values()) > 3


def test_self_metrics_per_account_and_process() -> None:
    ledgers = {a: ledger(r) for a, r in ROWS.items()}
    ledgers["acc-1"].gap_minutes, ledgers["acc-1"].corrections, ledgers["acc-1"].forgotten = 3, 2, 5
    ledgers["acc-3"] = ledger({})  # no health yet: down, with no poll time
    now = ledgers["acc-1"].counted + timedelta(seconds=75)
    process = snapshot.Health(
        api_requests={"success": 4, "error": 1},
        rate_limit_used=17,
        otlp_exports={"success": 6, "failure": 2},
        discovery_up=False,
        state_up=False,
        state_save_failures=9,
    )
    snap = build(CATALOGUE.select("lean"), process=process, now=now, ledgers=ledgers)
    accounts = ("acc-1", "acc-2", "acc-3")

    def per_account(*values: float) -> dict[Attrs, float]:
        return {key(account=a): v for a, v in zip(accounts, values, strict=True)}

    assert observed(snap, "otelbridge.up") == per_account(1, 0, 0)
    assert observed(snap, "otelbridge.poll.duration") == {
        key(account="acc-1"): 1.5,
        key(account="acc-2"): 2.5,
    }
    assert observed(snap, "otelbridge.watermark.lag") == per_account(75.0, 75.0, 75.0)
    assert observed(snap, "otelbridge.gap") == per_account(180, 0, 0)
    assert observed(snap, "otelbridge.corrections") == per_account(2, 0, 0)
    assert observed(snap, "otelbridge.series.forgotten") == per_account(5, 0, 0)
    assert observed(snap, "otelbridge.api.requests") == {
        frozenset({("outcome", "success")}): 4,
        frozenset({("outcome", "error")}): 1,
    }
    assert observed(snap, "otelbridge.otlp.exports") == {
        frozenset({("result", "success")}): 6,
        frozenset({("result", "failure")}): 2,
    }
    assert observed(snap, "otelbridge.ratelimit.used") == {frozenset(): 17}
    assert observed(snap, "otelbridge.discovery.up") == {frozenset(): 0}
    assert observed(snap, "otelbridge.state.up") == {frozenset(): 0}
    assert observed(snap, "otelbridge.state.save.failures") == {frozenset(): 9}


def test_state_metrics_only_when_state_is_kept_and_lag_never_negative() -> None:
    ledgers = {"acc-1": ledger(ROWS["acc-1"])}
    early = ledgers["acc-1"].counted - timedelta(seconds=30)  # a clock behind the watermark
    kept = build(CATALOGUE, process=snapshot.Health(state_up=True), now=early, ledgers=ledgers)
    assert observed(kept, "otelbridge.state.up") == {frozenset(): 1}
    assert observed(kept, "otelbridge.state.save.failures") == {frozenset(): 0}
    assert observed(kept, "otelbridge.discovery.up") == {frozenset(): 1}
    assert observed(kept, "otelbridge.watermark.lag") == {key(account="acc-1"): 0.0}
    none = build(CATALOGUE, process=snapshot.Health(), ledgers=ledgers)
    assert not none.observe("otelbridge.state.up") and not none.observe("otelbridge.state.save.failures")
    assert observed(none, "otelbridge.ratelimit.used") == {frozenset(): 0}


def test_a_float_field_not_held_exactly_is_still_summed_over_statuses_correctly_rounded() -> None:
    """A ledger that holds no exact fields: the answer's JSON numbers may be ints and floats."""
    plain = Ledger.starting_at(FIELDS, T0)
    durations = {"success": BIG, "error": 1e-16, "x": 1}  # summed in any order, never math.fsum's
    rows = {("api", status): vector(1, d) for status, d in durations.items()}
    plain.apply(plan(T0 + timedelta(minutes=10), plain.settled, plain.counted, TIMING), rows, {})
    snap = build(CATALOGUE.select("lean"), ledgers={"acc-1": plain})
    duration = next(c.name for c in W.counters if c.field == "duration")
    assert observed(snap, duration) == {key(account="acc-1", script="api"): math.fsum(durations.values())}
