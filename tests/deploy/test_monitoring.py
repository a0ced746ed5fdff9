"""The Grafana dashboard and the Prometheus alert rules in deploy/: every engine metric they
name is served by a real engine's /metrics, every query parses (promtool), and the rules
pass `promtool check rules` and their unit tests (`promtool test rules`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api._support import ApiClient, bearer, engine_and_app, rpm_message

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "execution-engine.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")

NOT_YET_SAMPLED = {"ee_send_retries_total"}
"""Declared at start, sampled from the first retry on (its label is the retcode)."""
REQUIRED_ALERTS = {
    "EETradingHalted",
    "EERestartIntensity",
    "EETerminalDisconnected",
    "EEJournalWriteFailures",
    "EEDatabaseDown",
    "EEReconciliationFailures",
    "EESlippageP95High",
    "EERejectionRateSpike",
    "EENoExecutionsDuringTradingHours",
    "EEUnknownExecutions",
    "EEReconcileCorrections",
}

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_ENGINE_METRIC = re.compile(r"(?<![A-Za-z0-9_:])ee_[A-Za-z0-9_]+(?![A-Za-z0-9_:])")
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}


def engine_metrics_in(expr: str) -> set[str]:
    """The engine's metric names an expression uses: every `ee_*` identifier outside string
    literals (label values and regexes are strings; label names never start with ee_)."""
    return set(_ENGINE_METRIC.findall(_QUOTED.sub('""', expr)))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside a collapsed row


def dashboard_queries() -> list[str]:
    board = dashboard()
    queries = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return queries


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """(declared, sampled) metric names of a real engine's /metrics after one execution."""
    with (
        engine_and_app(tmp_path_factory.mktemp("metrics")) as (_facade, app),
        ApiClient(app) as client,
    ):
        executed = client.post("/execute", headers=bearer("trader"), json=rpm_message())
        assert executed.status_code == 200, executed.text
        assert executed.json()["status"] == "FILLED"
        text = client.get("/metrics", headers=bearer("viewer")).text
    declared: set[str] = set()
    sampled: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    for family in text_string_to_metric_families(text):
        declared.update(family.name + s for s in suffixes.get(family.type, ("",)))
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


def promtool() -> str:
    """promtool's path; in CI a missing promtool fails (`.ci/run` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
            pytest.fail(f"{reason}; CI is set, so this test must run")
        pytest.skip(reason)
    return found


def run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the names -----------------------------------------------------------------------------


def test_the_name_parser_sees_metrics_not_strings_or_labels() -> None:
    expr = (
        'sum by (le) (rate(ee_fill_seconds_bucket{instance=~"ee_x.*", function="ee_y"}[5m]))'
        " / on() ee_a_total or vector(0) > ee_b"
    )
    assert engine_metrics_in(expr) == {"ee_fill_seconds_bucket", "ee_a_total", "ee_b"}


def test_every_metric_the_dashboard_names_is_served(served: tuple[set[str], set[str]]) -> None:
    declared, sampled = served
    named = set().union(*(engine_metrics_in(q) for q in dashboard_queries()))
    assert len(named) >= 20
    assert named - declared == set()
    assert named - NOT_YET_SAMPLED - sampled == set()


def test_every_metric_the_alert_rules_name_is_served(served: tuple[set[str], set[str]]) -> None:
    declared, sampled = served
    rules = alert_rules()
    named: set[str] = set()
    for rule in rules:
        found = engine_metrics_in(rule["expr"])
        assert found or rule["alert"] == "EEEngineDown", rule["alert"]
        named |= found
    assert named - declared == set()
    assert named - NOT_YET_SAMPLED - sampled == set()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS


# --- promtool ------------------------------------------------------------------------------


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    tool = promtool()
    run(tool, "check", "rules", str(RULES))
    run(tool, "test", "rules", str(RULE_TESTS))


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses the queries as recording rules, Grafana's variables filled in.
    tool = promtool()
    rules = []
    for index, query in enumerate(dashboard_queries()):
        if query.startswith("label_values("):
            continue  # a Grafana function, not PromQL
        for variable, value in _GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(tool, "check", "rules", str(path))


# --- the dashboard's shape -----------------------------------------------------------------


def test_the_dashboard_is_importable_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert board["uid"]
    assert board["title"]
    assert board["id"] is None
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
