"""The judge (spec.analysis.judge) through the real Prometheus: one scenario per verdict that acts.

Both versions' counts and histograms are scraped from the simulated mesh by the real Prometheus
and compared by the controller; the absolute checks stay in place, so what rolls these releases
back can only be the judge's comparison.
"""

from __future__ import annotations

from typing import Any

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ReleaseWatcher, install_app, ship, template_version, wait_for_rollback_applied

RPS = 40
#: Longer than the scenarios wait: a rollback that happens at all happened inside the first
#: interval, before the second tick could even run.
INTERVAL = "10m"
#: The wait for the rollback: generous for a busy machine, and still inside the first interval.
ABORT_TIMEOUT = 540


def _judge_checks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in status.get("checks") or [] if c.get("kind") == "judge"}


def _assert_aborted_by(kube: Kube, final: dict[str, Any], test: str) -> dict[str, Any]:
    assert final["phase"] == "Failed", final
    assert str(final.get("message", "")).startswith(f"aborted by the judge: judge/{test}"), final.get("message")
    assert int(final.get("failedChecks") or 0) == 0, "the threshold rule had no part in it"
    check = _judge_checks(final)[f"judge/{test}"]
    assert check["verdict"] == "Fail", check
    assert float(check["evidence"]) >= float(check["evidenceBound"]), check
    assert float(check["primarySamples"]) > 0 and float(check["samples"]) > 0, check
    # The Event is written just after the status the phase was read from.
    wait_for(lambda: [e["reason"] for e in kube.events("podinfo")], lambda reasons: "Aborted" in reasons,
             timeout=30, what="the Aborted Event")
    return check


def test_a_gross_failure_is_aborted_inside_the_first_interval(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", interval=INTERVAL, threshold=5, step_weight=20, max_weight=60,
                judge={"lookEvery": "2s", "errorRate": {}})
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    with ReleaseWatcher(kube, "podinfo") as watcher:
        ship(kube, "podinfo", "2-broken", error_rate=0.5)
        final = kube.wait_for_phase("podinfo", "Failed", "Succeeded", timeout=ABORT_TIMEOUT)

    check = _assert_aborted_by(kube, final, "errorRate")
    assert float(check["value"]) > 20 and float(check["primaryValue"]) < 5, check
    assert max(watcher.weights()) <= 20, f"no second step before the abort: {watcher.weights()}"
    assert template_version(kube.deployment("podinfo-primary")) == "1"
    wait_for_rollback_applied(kube, "podinfo", env.route_provider)


def test_a_latency_regression_under_the_absolute_bound_is_caught(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    # p99 stays far below the absolute bound of 500 ms: the threshold rule alone would promote.
    install_app(kube, "podinfo", interval=INTERVAL, threshold=5, step_weight=20, max_weight=60,
                metrics=[app.success_rate_check(), app.latency_check(maximum_ms=500)],
                judge={"lookEvery": "2s", "latency": {}})
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    ship(kube, "podinfo", "2-slower", latency_ms=60)
    final = kube.wait_for_phase("podinfo", "Failed", "Succeeded", timeout=ABORT_TIMEOUT)

    check = _assert_aborted_by(kube, final, "latency")
    assert float(check["value"]) < 500, f"the canary's p99 stayed under the absolute bound: {check}"
    assert float(check["value"]) > float(check["primaryValue"]), check
    assert template_version(kube.deployment("podinfo-primary")) == "1"
    wait_for_rollback_applied(kube, "podinfo", env.route_provider)
