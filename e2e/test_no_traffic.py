"""Scenario 9: a canary that receives no traffic is never promoted; noDataPolicy says what instead."""

from __future__ import annotations

import time

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube
from e2e.harness.release import ReleaseWatcher, install_app, ship, template_version


def test_no_traffic_holds_or_fails_never_promotes(env: Environment, kube: Kube, start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "quiet-hold", no_data_policy="hold", step_weight=50, max_weight=50, threshold=2)
    install_app(kube, "quiet-fail", no_data_policy="fail", step_weight=50, max_weight=50, threshold=2)
    # The hold ends: after 2 quiet ticks in a row, each further one counts as failed.
    install_app(kube, "quiet-limit", no_data_policy="hold", step_weight=50, max_weight=50, threshold=2,
                consecutive_no_data_limit=2)
    # The load generator sends nothing to any of them: rate 0 is the no-traffic case.

    with ReleaseWatcher(kube, "quiet-hold") as hold:
        ship(kube, "quiet-hold", "2")
        ship(kube, "quiet-fail", "2")
        ship(kube, "quiet-limit", "2")
        failed = kube.wait_for_phase("quiet-fail", "Failed", "Succeeded", timeout=90)
        limited = kube.wait_for_phase("quiet-limit", "Failed", "Succeeded", timeout=90)
        time.sleep(10)  # five intervals, well past the threshold of two

    assert failed["phase"] == "Failed", failed
    assert failed["failedChecks"] >= 2 or "no data" in failed.get("message", "").lower() or failed["message"], failed
    assert template_version(kube.deployment("quiet-fail-primary")) == "1"

    assert limited["phase"] == "Failed", limited
    assert "more than consecutiveNoDataLimit 2" in limited["message"], limited["message"]
    assert int(limited["consecutiveNoData"]) > 2, limited
    assert template_version(kube.deployment("quiet-limit-primary")) == "1"
    limit_reasons = [e["reason"] for e in kube.events("quiet-limit")]
    assert limit_reasons.count("NoTraffic") >= 1 and "RolledBack" in limit_reasons, limit_reasons

    held = kube.status("quiet-hold")
    assert held["phase"] == "Progressing", held
    assert "Succeeded" not in hold.phases() and "Failed" not in hold.phases(), hold.phases()
    assert max(hold.weights()) <= 50
    assert int(held.get("failedChecks") or 0) == 0, "hold does not count no data as a failure"
    assert template_version(kube.deployment("quiet-hold-primary")) == "1"
    reasons = {e["reason"] for e in kube.events("quiet-hold")}
    assert "NoTraffic" in reasons, reasons
