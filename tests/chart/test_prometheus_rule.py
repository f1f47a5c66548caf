"""The chart's PrometheusRule: valid for ``promtool check rules``, and each alert fires (and stays
quiet) on the series that should make it, run by ``promtool test rules`` on the rendered rules."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness.chart import render
from e2e.prometheus import find_binary
from tests.chart.support import needs_helm

_PROMETHEUS = find_binary()
PROMTOOL = Path(_PROMETHEUS).parent / "promtool" if _PROMETHEUS else None
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None or not PROMTOOL.is_file(),
    reason="no promtool (Debian's prometheus package ships it; e2e/cluster/build.sh installs it)",
)
pytestmark = [needs_helm, needs_promtool]

JOB = "canary-metrics"
OTHER_JOB = "another-canary-metrics"


def _rules_file(directory: Path) -> Path:
    rule = render({"prometheusRule": {"enabled": True}}).one("PrometheusRule")
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    done = _promtool("check", "rules", str(_rules_file(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout



def _canary_annotations(namespace: str, name: str, alert: str) -> dict[str, str]:
    # The $labels templates must expand to the Canary's own namespace and name.
    if alert == "CanaryReleaseFailed":
        return {"summary": f"Canary {namespace}/{name} rolled back.",
                "description": f"The release failed and traffic is back on the primary. `canary status {name} -n "
                               f"{namespace}` says which check failed."}
    return {"summary": f"Canary {namespace}/{name} is stalled.",
            "description": f"Its Stalled condition has been True for 5m: the analysis cannot advance. `canary status "
                           f"{name} -n {namespace}` gives the reason."}


DOWN = {"summary": "No canary controller replica is up.",
        "description": f'Prometheus has had no successful scrape of {{job="{JOB}"}} for 5m; no Canary advances, '
                       "promotes or rolls back meanwhile."}
NO_LEADER = {"summary": "No canary controller replica holds the leader Lease.",
             "description": f'Every replica of {{job="{JOB}"}} has reported canary_leader 0 for 1m; no Canary is '
                            "stepped until one acquires the Lease."}

#: name: (input series as promtool writes them, [(eval time, alert, expected firing alerts)]).
CASES: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str, list[dict[str, Any]]]]]] = {
    "controller down after its for": (
        [(f'up{{job="{JOB}", instance="a"}}', "1 1 0x10"), (f'up{{job="{JOB}", instance="b"}}', "1 1 0x10")],
        [("5m", "CanaryControllerDown", []),
         ("8m", "CanaryControllerDown", [{"exp_labels": {"severity": "critical"}, "exp_annotations": DOWN}])],
    ),
    "one replica of two down is not down": (
        [(f'up{{job="{JOB}", instance="a"}}', "1x10"), (f'up{{job="{JOB}", instance="b"}}', "0x10")],
        [("8m", "CanaryControllerDown", [])],
    ),
    "controller never scraped": (
        [(f'up{{job="{OTHER_JOB}", instance="a"}}', "1x10")],
        [("4m", "CanaryControllerDown", []),
         ("6m", "CanaryControllerDown", [{"exp_labels": {"severity": "critical", "job": JOB}, "exp_annotations": DOWN}])],
    ),
    "no replica leads": (
        [(f'canary_leader{{job="{JOB}", instance="a"}}', "1 0x5"), (f'canary_leader{{job="{JOB}", instance="b"}}', "0x6")],
        [("1m", "CanaryLeaderLost", []),
         ("3m", "CanaryLeaderLost", [{"exp_labels": {"severity": "critical"}, "exp_annotations": NO_LEADER}])],
    ),
    "the standby is not a lost leader": (
        [(f'canary_leader{{job="{JOB}", instance="a"}}', "1x6"), (f'canary_leader{{job="{JOB}", instance="b"}}', "0x6")],
        [("5m", "CanaryLeaderLost", [])],
    ),
    "a failed release": (
        [(f'canary_phase{{job="{JOB}", instance="a", namespace="shop", name="web", phase="Failed"}}', "0 0 1x4"),
         (f'canary_phase{{job="{JOB}", instance="a", namespace="shop", name="web", phase="Progressing"}}', "1 1 0x4"),
         (f'canary_phase{{job="{JOB}", instance="a", namespace="shop", name="api", phase="Succeeded"}}', "1x6")],
        [("1m", "CanaryReleaseFailed", []),
         ("3m", "CanaryReleaseFailed", [{"exp_labels": {"severity": "warning", "namespace": "shop", "name": "web"},
                                         "exp_annotations": _canary_annotations("shop", "web", "CanaryReleaseFailed")}])],
    ),
    "a stalled analysis after its for": (
        [(f'canary_stalled{{job="{JOB}", instance="a", namespace="shop", name="web"}}', "1x10"),
         (f'canary_stalled{{job="{JOB}", instance="a", namespace="shop", name="api"}}', "0x10")],
        [("4m", "CanaryAnalysisStalled", []),
         ("6m", "CanaryAnalysisStalled", [{"exp_labels": {"severity": "warning", "namespace": "shop", "name": "web"},
                                           "exp_annotations": _canary_annotations("shop", "web", "CanaryAnalysisStalled")}])],
    ),
    "another controller's series are not ours": (
        [(f'canary_stalled{{job="{OTHER_JOB}", namespace="shop", name="web"}}', "1x10"),
         (f'canary_phase{{job="{OTHER_JOB}", namespace="shop", name="web", phase="Failed"}}', "1x10"),
         (f'canary_leader{{job="{OTHER_JOB}"}}', "0x10"),
         (f'up{{job="{JOB}", instance="a"}}', "1x10")],
        [("8m", "CanaryAnalysisStalled", []), ("8m", "CanaryReleaseFailed", []), ("8m", "CanaryLeaderLost", []),
         ("8m", "CanaryControllerDown", [])],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_alert_fires_on_its_series_only(tmp_path: Path, case: tuple[list[tuple[str, str]], list[Any]]) -> None:
    series, checks = case
    rules = _rules_file(tmp_path)
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}
                                for at, alert, expected in checks],
        }],
    }
    test_file = tmp_path / "tests.yaml"
    test_file.write_text(yaml.safe_dump(tests))
    done = _promtool("test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
