"""Every query of the Grafana dashboard returns data from Prometheus after real releases.

The controller runs as a process, Prometheus scrapes its /metrics as it would through the
chart's metrics Service (under a job of its own), and one Canary goes through a promoted and a
rolled-back release. Then each expression in ``integrations/grafana/canary.json`` is sent the way
Grafana sends it: template variables set to this test's namespace and Canary, ``$__range`` to
the time the test ran, ``$__rate_interval`` to what Grafana computes for the chosen step, range
targets as range queries over that time and instant targets as instant queries. So a renamed
series, a label the controller does not set, or a counter whose first event increase() cannot
see shows up as an empty panel here first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from e2e.conftest import StartController
from e2e.harness import grafana
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship
from e2e.prometheus import ScrapeTarget

RPS = 40
CANARY = "podinfo"
#: The job the controller's metrics are scraped under, as the chart's ServiceMonitor names it.
JOB = "canary-controller"
#: Range queries' step; Grafana picks one from the width of the panel, a few seconds here.
STEP_SECONDS = 2.0
#: Bounds on waiting for Prometheus's next scrapes, not how long the test waits.
SCRAPE_TIMEOUT = 60.0

Series = list[dict[str, Any]]


def _values(series: Series) -> list[float]:
    """Every sample value of a range or instant result."""
    out: list[float] = []
    for item in series:
        samples = item.get("values") or ([item["value"]] if "value" in item else [])
        out += [float(v) for _, v in samples]
    return out


def _labels(series: Series, label: str) -> set[str]:
    return {str(item["metric"].get(label)) for item in series}


#: What some panels must show besides "not empty", by (panel title, refId): the point of each.
EXPECTED: dict[tuple[str, str], Callable[[Series], bool]] = {
    ("Releases over time", "A"): lambda s: max(_values(s)) > 0,  # the promotion
    ("Releases over time", "B"): lambda s: max(_values(s)) > 0,  # the rollback
    ("Rollbacks by cause over time", "A"): lambda s: "threshold" in _labels(s, "reason"),
    ("Rollbacks in range", "A"): lambda s: any(
        item["metric"].get("reason") == "threshold" and float(item["value"][1]) >= 1 for item in s),
    ("Current phase", "A"): lambda s: _labels(s, "phase") == {"Failed"},
    ("Canary weight", "A"): lambda s: max(_values(s)) >= 20,
    ("Stalled", "A"): lambda s: max(_values(s)) == 1,  # a rolled-back Canary is Stalled
    ("Leader", "A"): lambda s: _values(s)[-1] == 1,
    ("Replicas up", "A"): lambda s: _values(s)[-1] == 1,
    ("Check $check against its bounds", "B"): lambda s: _labels(s, "check") == {"request-success-rate"},
    ("Check $check against its bounds", "C"): lambda s: _labels(s, "check") == {"request-duration"},
    ("annotation Promotions", ""): lambda s: _labels(s, "name") == {CANARY},
    ("annotation Rollbacks", ""): lambda s: _labels(s, "reason") == {"threshold"},
}


def _shows_data(_: Series) -> bool:
    return True


def test_every_dashboard_query_returns_data_after_a_promotion_and_a_rollback(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    controller = start_controller()
    previous = env.prometheus.scrape_targets
    env.prometheus.set_targets([*previous, ScrapeTarget(f"127.0.0.1:{controller.metrics_port}", {"job": JOB})])
    try:
        started = time.time()
        install_app(kube, CANARY)
        ns = kube.namespace
        # The counters' zeros must be in Prometheus before the first release, or increase()
        # would have no sample before the promotion to count it from.
        env.prometheus.wait_for_series(f'canary_promotions_total{{namespace="{ns}", name="{CANARY}"}} == 0',
                                       timeout=SCRAPE_TIMEOUT)
        env.mesh.client.set_load(ns, CANARY, RPS)

        ship(kube, CANARY, "2")
        promoted = kube.wait_for_phase(CANARY, "Succeeded", "Failed", timeout=150)
        assert promoted["phase"] == "Succeeded", promoted
        ship(kube, CANARY, "3-broken", error_rate=0.5)
        rolled_back = kube.wait_for_phase(CANARY, "Failed", "Succeeded", timeout=120)
        assert rolled_back["phase"] == "Failed", rolled_back

        # Both outcomes have been scraped once the counters show them.
        env.prometheus.wait_for_series(
            f'canary_rollbacks_total{{namespace="{ns}", name="{CANARY}", reason="threshold"}} == 1'
            f' and on() canary_promotions_total{{namespace="{ns}", name="{CANARY}"}} == 1',
            timeout=SCRAPE_TIMEOUT)
        checks = sorted(c["name"] for c in rolled_back.get("checks") or [] if c.get("kind") == "metric")
        assert checks == ["request-duration", "request-success-rate"], rolled_back.get("checks")

        dashboard = grafana.load()
        values = {"job": JOB, "namespace": ns, "canary": CANARY, "check": grafana.multi_value(checks)}
        _assert_variables_list_this_release(env, dashboard, values, checks)
        _assert_every_query_has_data(env, dashboard, values, started)
    finally:
        env.prometheus.set_targets(previous)


def _assert_variables_list_this_release(env: Environment, dashboard: dict[str, Any], values: dict[str, str],
                                        checks: list[str]) -> None:
    wanted = {"job": {JOB}, "namespace": {values["namespace"]}, "canary": {CANARY}, "check": set(checks)}
    queries = grafana.variable_queries(dashboard)
    assert {q.variable for q in queries} == set(wanted)
    for q in queries:
        match = grafana.substitute(q.match, values, rate_interval="1m", time_range="1h")
        listed = set(env.prometheus.label_values(q.label, match))
        assert wanted[q.variable] <= listed, f"${q.variable} ({q.label} of {match}) lists {sorted(listed)}"


def _assert_every_query_has_data(env: Environment, dashboard: dict[str, Any], values: dict[str, str],
                                 started: float) -> None:
    scrape = 1.0  # the e2e Prometheus scrapes every second
    # Grafana's $__rate_interval: the larger of four scrape intervals and one step plus a scrape.
    rate_interval = f"{max(4 * scrape, STEP_SECONDS + scrape):g}s"
    queries = grafana.queries(dashboard)
    assert len(queries) >= 15, [str(q) for q in queries]
    unchecked = set(EXPECTED)
    for q in queries:
        end = time.time()
        expr = grafana.substitute(q.expr, values, rate_interval=rate_interval,
                                  time_range=f"{int(end - started) + 1}s")

        def run(expr: str = expr) -> Series:
            if q.instant:
                return env.prometheus.query(expr)
            return env.prometheus.query_range(expr, started, time.time(), STEP_SECONDS)

        expected = EXPECTED.get((q.panel, q.ref_id), _shows_data)
        unchecked.discard((q.panel, q.ref_id))
        result = wait_for(run, lambda s: bool(s) and bool(_values(s)) and expected(s), timeout=SCRAPE_TIMEOUT,
                          what=f"panel {q} as {expr!r} to show this test's releases")
        assert result
    assert not unchecked, f"EXPECTED names panels the dashboard no longer has: {sorted(unchecked)}"
