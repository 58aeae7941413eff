"""Alert rules (promtool check and unit tests), the Grafana dashboard, and the chart copies."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import CHARTS, KNOWN_METRICS, MONITORING

ALERTS = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "accord.json"
REQUIRED_ALERTS = {
    "AccordTargetDown",
    "AccordEdgeConnectionsNearLimit",
    "AccordEdgeErrorRateHigh",
    "AccordFanoutLatencyHigh",
    "AccordPushLatencyHigh",
    "AccordGrpcLatencyHigh",
    "AccordCpuNearLimit",
    "AccordMemoryNearLimit",
}
REQUIRED_PANELS = {
    "Connections",
    "Messages/s",
    "Fan-out latency",
    "Push latency",
    "Errors by code",
    "Presence sessions",
    "gRPC latency (p95)",
}


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def accord_metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\baccord_[a-z_]+", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(MONITORING / "prometheus" / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing() -> None:
    tests = yaml.safe_load((MONITORING / "prometheus" / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == REQUIRED_ALERTS


def test_alerts_cover_the_required_conditions() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) == REQUIRED_ALERTS
    assert "accord_edge_max_connections" in by_name["AccordEdgeConnectionsNearLimit"]["expr"]
    assert "> 0.8" in by_name["AccordEdgeConnectionsNearLimit"]["expr"]
    assert "> 0.05" in by_name["AccordEdgeErrorRateHigh"]["expr"]
    for name in ("AccordFanoutLatencyHigh", "AccordPushLatencyHigh", "AccordGrpcLatencyHigh"):
        assert "histogram_quantile(0.95" in by_name[name]["expr"]
        assert re.search(r">\s*1\s*$", by_name[name]["expr"].strip())
    for name in ("AccordCpuNearLimit", "AccordMemoryNearLimit"):
        assert "kube_pod_container_resource_limits" in by_name[name]["expr"]
        assert "> 0.8" in by_name[name]["expr"]
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        assert accord_metrics(rule["expr"]) <= KNOWN_METRICS, rule["alert"]


def test_every_alert_has_a_runbook_section() -> None:
    doc = (MONITORING.parent / "docs" / "operations.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9-]", "", h.strip().lower()) for h in re.findall(r"^#+\s+(.*)$", doc, re.M)
    }
    for rule in rules():
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in headings, f"docs/operations.md has no heading for {rule['alert']}"


def test_dashboard_has_the_required_panels() -> None:
    data = dashboard()
    titles = {p["title"] for p in data["panels"]}
    assert titles >= REQUIRED_PANELS
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    assert data["uid"] == "accord-overview"
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in data["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_queries_use_exported_metrics() -> None:
    used = set().union(*(accord_metrics(e) for e in panel_exprs()))
    assert used <= KNOWN_METRICS
    # Every metric the services export appears on the dashboard.
    assert used == KNOWN_METRICS


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    exprs = [e.replace("$__rate_interval", "5m") for e in panel_exprs()]
    groups = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(groups))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("original", "copy"),
    [
        (ALERTS, CHARTS / "accord" / "files" / "alerts.yml"),
        (DASHBOARD, CHARTS / "accord" / "files" / "accord-dashboard.json"),
    ],
)
def test_chart_copies_match_the_originals(original: Path, copy: Path) -> None:
    assert copy.read_bytes() == original.read_bytes(), f"run: cp {original} {copy}"
