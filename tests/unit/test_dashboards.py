"""dashboards/*.json are generated from the catalogue (python -m dashboards.generate) and stay fresh;
every panel has a unit, a description and the data source variable; every metric has a panel."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from dashboards.generate import Family, families, family_dashboard, generate, render
from otelbridge.catalogue import Dimension, SourcedMetric, load
from otelbridge.docs import prometheus_name
from tests.datasets import workers

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def committed() -> dict[str, Any]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def exprs(board: dict[str, Any]) -> str:
    return "\n".join(t["expr"] for p in panels(board) for t in p["targets"])


def test_dashboards_are_fresh() -> None:
    fresh = generate()
    assert sorted(fresh) == sorted(committed()), "dashboards/ holds a file the generator does not write"
    for name, text in fresh.items():
        on_disk = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert on_disk == text, f"regenerate with: python -m dashboards.generate ({name} is stale)"


def test_every_panel_has_a_unit_a_description_and_the_data_source_variable() -> None:
    for name, board in committed().items():
        assert panels(board), name
        for p in panels(board):
            assert p["fieldConfig"]["defaults"]["unit"], (name, p["title"])
            assert p["description"], (name, p["title"])
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, p["title"])
            assert p["targets"] and all(t["expr"] for t in p["targets"]), (name, p["title"])
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[:2] == ["datasource", "account"], name


def test_every_catalogue_metric_is_on_a_dashboard() -> None:
    boards = committed()
    text = "\n".join(exprs(b) for b in boards.values())
    metrics = [prometheus_name(c.name, c.unit, True) for d in load().datasets for c in d.counters]
    metrics += [
        prometheus_name(g.name, g.unit, False)
        for d in load().datasets
        for g in (*d.quantile_gauges, *d.average_gauges, *d.level_gauges)
    ]
    metrics += [prometheus_name(m.name, m.unit, m.kind == "counter") for m in load().self_metrics]
    assert [m for m in metrics if m not in text] == []


def test_units_follow_the_catalogue() -> None:
    board = committed()[families()[workers().dataset].file]
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in panels(board)}
    assert units["CPU time"] == units["CPU time per request (mean)"] == "s"
    assert units["Response body size"] == "bytes" and units["Response body size per second"] == "Bps"
    assert units["Requests per second by script"] == "reqps" and units["Error ratio"] == "percentunit"
    assert units["Duration"] == "suffix: GB·s"


def test_a_new_dataset_family_needs_data_only() -> None:
    """Another catalogue (dataset, metrics) and a families entry make a dashboard of its own."""
    base = workers()
    requests = SourcedMetric("cloudflare.r2.requests", "requests", "{request}", "R2 operations.")
    errors = SourcedMetric("cloudflare.r2.errors", "errors", "{error}", "Failed R2 operations.")
    size = SourcedMetric("cloudflare.r2.object_size", "objectBytes", "By", "Bytes of objects.")
    r2 = replace(
        base,
        dataset="r2OperationsAdaptiveGroups",
        dimensions=(
            Dimension("bucket.name", "bucketName", "the bucket"),
            Dimension("cloudflare.r2.action", "actionType", "the R2 operation", optional=True),
        ),
        counter_key=("bucket.name", "cloudflare.r2.action"),
        page_key="bucket.name",
        gauge_key=("bucket.name",),
        counters=(requests, errors, size),
        quantile_gauges=(),
        average_gauges=(),
    )
    family = Family(
        "r2OperationsAdaptiveGroups",
        "Cloudflare R2",
        "otelbridge-r2",
        "r2.json",
        "bucket.name",
        "bucket",
        "Bucket",
        "cloudflare.r2.action",
        "action",
        requests.name,
        errors.name,
    )
    board = json.loads(render(family_dashboard(r2, family)))
    assert board["uid"] == "otelbridge-r2"
    text = exprs(board)
    assert "cloudflare_r2_object_size_bytes_total" in text and 'bucket_name=~"$bucket"' in text
    assert "cloudflare_workers" not in text
