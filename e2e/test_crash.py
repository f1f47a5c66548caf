"""Scenario 8: the controller is SIGKILLed mid-release and restarted; the release resumes.

All of a release's state lives in the Canary's status, and every action is safe to repeat, so a
new process must pick up at the step the old one reached: never from zero, never skipping the
analysis, and ending with the same result an uninterrupted run would have.
"""

from __future__ import annotations

import time

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ReleaseWatcher, install_app, route_shares, ship, template_version

STEP = 20


def test_sigkill_mid_release_then_restart_continues(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    controller = start_controller()
    # Latency is not what this scenario is about: with both cores busy the simulated mesh's
    # healthy p99 passes the default 200 ms bound (docs/testing.md, under load).
    install_app(kube, "podinfo", interval="2s", step_weight=STEP, max_weight=80,
                metrics=[app.success_rate_check(), app.latency_check(2000)])
    env.mesh.client.set_load(kube.namespace, "podinfo", 40)

    with ReleaseWatcher(kube, "podinfo") as watcher:
        ship(kube, "podinfo", "2")
        wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get("canaryWeight") or 0) >= 40,
                 timeout=60, what="the release to reach 40%")
        controller.kill()
        at_kill = kube.status("podinfo")
        shares_at_kill = route_shares(kube, "podinfo", env.route_provider)
        time.sleep(3)
        assert kube.status("podinfo")["canaryWeight"] == at_kill["canaryWeight"], "nothing moves without a controller"

        restarted = time.monotonic()
        controller.start()  # waits for the dead leader's Lease to expire, as a new Pod would
        final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)
        print(f"restarted controller took over after {time.monotonic() - restarted:.1f}s")

    assert final["phase"] == "Succeeded", final
    weights = watcher.weights()
    killed_at = int(at_kill["canaryWeight"])
    # The status is written before the route: a kill between the two leaves the route a step
    # behind, and the restarted controller carries that step out.
    assert round(shares_at_kill.get("podinfo-canary", 0) * 100) in (killed_at, killed_at - STEP), shares_at_kill
    after_kill = weights[weights.index(killed_at):]
    progressing = after_kill[: after_kill.index(0)] if 0 in after_kill else after_kill
    assert progressing == sorted(progressing), f"the release never went backwards: {weights}"
    assert 80 in weights, f"it went on through every remaining step: {weights}"
    assert final["lastAppliedSpec"] == at_kill["lastAppliedSpec"]
    assert template_version(kube.deployment("podinfo-primary")) == "2"
    assert controller.starts == 2
