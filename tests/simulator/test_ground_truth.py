"""Ground truth (Python, exact) equals what the API returns over HTTP, for several groupings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from otelbridge.simulator import Traffic
from otelbridge.simulator.events import METRICS, QUANTILE_FIELDS, STATUSES, SUM_FIELDS
from tests.simulator.sim_support import NOW, Api

SUMS = "sum { " + " ".join(SUM_FIELDS) + " }"
END = NOW.replace(second=0)
START = END - timedelta(hours=1)


def add(into: dict[str, int | float], row: dict[str, int | float]) -> None:
    for k, v in row.items():
        into[k] = into.get(k, 0) + v


@pytest.mark.parametrize(
    "dimensions",
    [
        "",
        "scriptName",
        "status",
        "scriptName status",
        "datetimeFiveMinutes scriptName",
        "coloCode datetimeMinute",
    ],
)
async def test_sums_over_any_grouping_equal_ground_truth(
    api: Api, traffic: Traffic, account: str, dimensions: str
) -> None:
    rows = await api.rows(account, START, END, dimensions, SUMS)
    total: dict[str, int | float] = {}
    for row in rows:
        add(total, row["sum"])
    assert total == traffic.totals(account, START, END)
    if not dimensions:
        assert len(rows) == 1


async def test_series_totals_match_rows_exactly(api: Api, traffic: Traffic, account: str) -> None:
    rows = await api.rows(account, START, END, "scriptName status", SUMS)
    got = {(r["dimensions"]["scriptName"], r["dimensions"]["status"]): r["sum"] for r in rows}
    truth = traffic.series_totals(account, START, END)
    assert got == truth
    assert {status for _, status in truth} == set(STATUSES)  # all five statuses occur within an hour
    assert any(
        isinstance(v["duration"], float) and v["duration"] != int(v["duration"]) for v in truth.values()
    )


async def test_totals_filtered_by_script_and_status(api: Api, traffic: Traffic, account: str) -> None:
    rows = await api.rows(account, START, END, "scriptName status", SUMS)
    for row in rows:
        d = row["dimensions"]
        assert row["sum"] == traffic.totals(account, START, END, script=d["scriptName"], status=d["status"])


async def test_quantiles_and_sample_interval_equal_ground_truth(
    api: Api, traffic: Traffic, account: str
) -> None:
    fields = "quantiles { " + " ".join(QUANTILE_FIELDS) + " } avg { sampleInterval }"
    start = END - timedelta(minutes=15)
    rows = await api.rows(account, start, END, "scriptName", fields)
    assert rows
    for row in rows:
        script = row["dimensions"]["scriptName"]
        assert row["quantiles"] == traffic.quantiles(account, script, start, END)
        assert row["avg"]["sampleInterval"] == traffic.sample_interval(account, script, start, END) == 1.0


async def test_quantiles_are_ordered_within_min_and_max(api: Api, account: str) -> None:
    agg = " ".join(METRICS)
    fields = "quantiles { " + " ".join(QUANTILE_FIELDS) + f" }} max {{ {agg} }} min {{ {agg} }}"
    rows = await api.rows(account, START, END, "scriptName status datetimeFiveMinutes", fields)
    for row in rows:
        q = row["quantiles"]
        for metric in METRICS:
            chain = [row["min"][metric]] + [
                q[f"{metric}{p}"] for p in ("P25", "P50", "P75", "P90", "P95", "P99", "P999")
            ]
            chain.append(row["max"][metric])
            assert chain == sorted(chain), (row["dimensions"], metric)


async def test_five_minute_quantile_is_not_a_merge_of_minute_quantiles(api: Api, account: str) -> None:
    start = END - timedelta(minutes=5)
    fields = "quantiles { cpuTimeP99 cpuTimeP50 } sum { requests }"
    whole = {
        r["dimensions"]["scriptName"]: r for r in await api.rows(account, start, END, "scriptName", fields)
    }
    minutes = await api.rows(account, start, END, "scriptName datetimeMinute", fields)
    merged_differs = 0
    for script, row in whole.items():
        parts = [r for r in minutes if r["dimensions"]["scriptName"] == script]
        if len(parts) < 2:
            continue
        p99s = [r["quantiles"]["cpuTimeP99"] for r in parts]
        weighted = (
            sum(r["quantiles"]["cpuTimeP99"] * r["sum"]["requests"] for r in parts) / row["sum"]["requests"]
        )
        if row["quantiles"]["cpuTimeP99"] not in (max(p99s), weighted, sum(p99s) / len(p99s)):
            merged_differs += 1
    assert merged_differs >= 1


async def test_no_data_for_minutes_that_have_not_ended(api: Api, traffic: Traffic, account: str) -> None:
    later = NOW + timedelta(hours=1)
    rows = await api.rows(account, END - timedelta(minutes=2), later, "datetimeMinute")
    assert [r["dimensions"]["datetimeMinute"] for r in rows] == [
        "2026-11-26T11:58:00Z",
        "2026-11-26T11:59:00Z",
    ]
    assert traffic.totals(account, END, later)["requests"] == 0


def test_traffic_is_deterministic_per_seed() -> None:
    a, b, c = Traffic.default(seed=1), Traffic.default(seed=1), Traffic.default(seed=2)
    tag = a.accounts[0].tag
    assert a.totals(tag, START, END, as_of=NOW) == b.totals(tag, START, END, as_of=NOW)
    assert a.accounts[0].tag != c.accounts[0].tag
    assert len(a.accounts) == 3 and all(len(x.tag) == 32 for x in a.accounts)
    names = {s.name for x in a.accounts for s in x.scripts}
    assert any(not n.isascii() and "." in n and "-" in n for n in names)
    assert {s.profile for x in a.accounts for s in x.scripts} == {"busy", "idle", "erroring", "bursty"}
