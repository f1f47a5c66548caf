"""The chart's PrometheusRule against a real controller's metrics on the e2e Prometheus.

``tests/chart/test_prometheus_rule.py`` runs the alerts on series written by hand; this runs each
alert's expression, exactly as ``helm template`` renders it, on the series a real controller
exports during a real rollback: the labels and values the expressions assume (``phase="Failed"``,
the Canary's ``namespace`` and ``name``, ``canary_leader``, ``canary_stalled``, ``up``) must be the
ones the controller and a scrape produce. The rule is rendered with ``prometheusRule.job`` set to
the job this Prometheus gives the controller's target.
"""

from __future__ import annotations

from typing import Any

from e2e.conftest import StartController
from e2e.harness.chart import render
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship
from e2e.prometheus import ScrapeTarget

CANARY = "podinfo"
RPS = 40
JOB = "canary-chart-alerts"
#: A few scrape intervals: a series the controller exports is in Prometheus well within this.
SCRAPE_TIMEOUT = 60.0


def _expressions() -> dict[str, str]:
    rule = render({"prometheusRule": {"enabled": True, "job": JOB}}).one("PrometheusRule")
    [group] = rule["spec"]["groups"]
    return {r["alert"]: r["expr"] for r in group["rules"]}


def _labels(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: v for k, v in series["metric"].items() if k in ("namespace", "name")} for series in result]


def test_each_alert_expression_matches_the_controllers_own_series(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    alerts = _expressions()
    env.use_flavour("linkerd")
    controller = start_controller()
    previous = env.prometheus.scrape_targets
    env.prometheus.set_targets([*previous, ScrapeTarget(f"127.0.0.1:{controller.metrics_port}", {"job": JOB})])
    try:
        prometheus = env.prometheus
        ns = kube.namespace
        # The controller leads and is scraped: neither controller alert holds.
        prometheus.wait_for_series(f'max(canary_leader{{job="{JOB}"}}) == 1', timeout=SCRAPE_TIMEOUT)
        assert prometheus.query(alerts["CanaryLeaderLost"]) == []
        assert prometheus.query(alerts["CanaryControllerDown"]) == []

        install_app(kube, CANARY)
        env.mesh.client.set_load(ns, CANARY, RPS)
        ship(kube, CANARY, "2-broken", error_rate=0.5)
        failed = kube.wait_for_phase(CANARY, "Failed", "Succeeded", timeout=150)
        assert failed["phase"] == "Failed", failed

        # A rolled-back Canary: release failed, and its Stalled condition is True.
        mine = [{"namespace": ns, "name": CANARY}]
        assert _labels(prometheus.wait_for_series(alerts["CanaryReleaseFailed"], timeout=SCRAPE_TIMEOUT)) == mine
        assert _labels(prometheus.wait_for_series(alerts["CanaryAnalysisStalled"], timeout=SCRAPE_TIMEOUT)) == mine

        # The controller gone: its target's scrapes fail and "controller down" holds.
        controller.stop()
        down = prometheus.wait_for_series(alerts["CanaryControllerDown"], timeout=SCRAPE_TIMEOUT)
        assert [s["value"][1] for s in down] == ["0"]
        wait_for(lambda: prometheus.query(alerts["CanaryLeaderLost"]), lambda r: r == [], timeout=5,
                 what="no leader-lost alert for a controller that is down (that is the other alert's case)")
    finally:
        env.prometheus.set_targets(previous)
