"""alerts/otelbridge.rules.yaml: valid for promtool, every alert unit-tested firing and not firing
(tests/alerts/*.test.yaml, run with `promtool test rules`), and documented in docs/alerts.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelbridge.catalogue import load
from otelbridge.docs import prometheus_name
from tests.require import missing

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "otelbridge.rules.yaml"
TESTS = sorted(Path(__file__).parent.glob("*.test.yaml"))
DOCS = ROOT / "docs" / "alerts.md"
METRIC = re.compile(r"\b(?:otelbridge|cloudflare)_\w+\b(?!\s*[=!:])")  # a name: not a label, not a rule's
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")  # label lists


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None
    )
    if found is None:
        missing("promtool not found: install Debian's `prometheus` package")
    return found


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def anchor(heading: str) -> str:
    """The anchor GitHub and most Markdown renderers give a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_rules_pass_promtool_check(promtool: str) -> None:
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts()) + 1} rules found" in checked.stdout  # + the CPU-limit parameter


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert TESTS
    ran = subprocess.run([promtool, "test", "rules", *map(str, TESTS)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("SUCCESS") == len(TESTS), ran.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for path in TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for rule in alerts():
        assert cases.get(rule["alert"]) == {True, False}, f"{rule['alert']}: firing and not firing cases"


def test_every_alert_has_a_summary_description_and_runbook_section() -> None:
    headings = {anchor(line.lstrip("#")) for line in DOCS.read_text().splitlines() if line.startswith("### ")}
    for rule in alerts():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert notes["runbook_url"] == f"docs/alerts.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"].lower() in headings, f"docs/alerts.md has no section for {rule['alert']}"


def test_rules_use_only_names_otelbridge_exports() -> None:
    c = load()
    exported = {prometheus_name(m.name, m.unit, True) for d in c.datasets for m in d.counters}
    gauges = [g for d in c.datasets for g in (*d.quantile_gauges, *d.average_gauges, *d.level_gauges)]
    exported |= {prometheus_name(m.name, m.unit, False) for m in gauges}
    exported |= {prometheus_name(m.name, m.unit, m.kind == "counter") for m in c.self_metrics}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [GROUPING.sub("", rule["expr"]) for group in groups for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(METRIC, expr)}
    assert "cloudflare_r2_operations_total" in used and "cloudflare_r2_bucket_name" not in used
    assert used and used - exported == set()
