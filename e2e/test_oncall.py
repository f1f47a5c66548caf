"""Scenarios 4 and 5: what an on-call engineer does to a running release, and how fast it acts.

Scenario 4 writes the annotation directly, as `kubectl annotate` would, and times it. Scenario 5
goes through the `canary` CLI, which writes the same annotations and waits for the controller's
receipt in status.handledAnnotations.
"""

from __future__ import annotations

import subprocess
import sys
import time

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ReleaseWatcher, install_app, route_shares, ship, template_version

RPS = 40
ALL_TO_PRIMARY = {"podinfo-primary": 1.0, "podinfo-canary": 0.0}


def cli(env: Environment, kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "canary", *args, "-n", kube.namespace, "--kubeconfig", str(env.kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_rollback_annotation_returns_all_traffic_within_two_seconds(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    # A long interval: the release sits at its first step, so only the annotation can end it.
    install_app(kube, "podinfo", interval="1m", step_weight=30, max_weight=60)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    ship(kube, "podinfo", "2")
    wait_for(lambda: route_shares(kube, "podinfo", env.route_provider),
             lambda shares: shares.get("podinfo-canary", 0) > 0, timeout=60, what="traffic on the canary")
    env.mesh.wait_for_canary_share(kube.namespace, "podinfo", "podinfo-canary", 0.3, timeout=10)

    started = time.monotonic()
    kube.annotate_canary("podinfo", {"canary.dev/rollback": "bad dashboards"})
    wait_for(lambda: route_shares(kube, "podinfo", env.route_provider), lambda s: s == ALL_TO_PRIMARY,
             timeout=10, what="the route to send everything to the primary", interval=0.05)
    route_written = time.monotonic() - started
    # And the data plane acts on it: the proxy's own routing table says 100/0.
    env.mesh.wait_for_canary_share(kube.namespace, "podinfo", "podinfo-canary", 0.0, timeout=10)
    data_plane = time.monotonic() - started

    print(f"rollback annotation -> route written {route_written:.2f}s, data plane {data_plane:.2f}s")
    assert data_plane <= 2.0, f"all traffic back on the primary took {data_plane:.2f}s (route written at {route_written:.2f}s)"
    final = kube.wait_for_phase("podinfo", "Failed", timeout=30)
    assert "bad dashboards" in final.get("message", ""), final
    assert template_version(kube.deployment("podinfo-primary")) == "1"


def test_promote_pause_resume_and_retry(env: Environment, kube: Kube, start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", interval="2s", step_weight=20, max_weight=80, threshold=2,
                no_data_policy="fail")
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    # pause: the release stays where it is for many intervals, then resume finishes it.
    with ReleaseWatcher(kube, "podinfo") as watcher:
        ship(kube, "podinfo", "2")
        wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get("canaryWeight") or 0) >= 20,
                 timeout=60, what="the first step")
        done = cli(env, kube, "pause", "podinfo")
        assert done.returncode == 0, done.stderr
        held = int(kube.status("podinfo").get("canaryWeight") or 0)
        time.sleep(8)  # four intervals
        assert int(kube.status("podinfo").get("canaryWeight") or 0) == held, "a paused release must not move"
        done = cli(env, kube, "resume", "podinfo")
        assert done.returncode == 0, done.stderr
        final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=120)
    assert final["phase"] == "Succeeded", final
    assert max(watcher.weights()) == 80

    # promote: skip the remaining analysis of a release that would otherwise take minutes.
    kube.custom.patch_namespaced_custom_object(
        "canary.dev", "v1alpha1", kube.namespace, "canaries", "podinfo", {"spec": {"analysis": {"interval": "5m"}}})
    ship(kube, "podinfo", "3")
    wait_for(lambda: kube.status("podinfo"), lambda st: st.get("phase") == "Progressing",
             timeout=60, what="the release of v3 to start")
    started = time.monotonic()
    done = cli(env, kube, "promote", "podinfo")
    assert done.returncode == 0, done.stderr
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=60)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "3"
    assert time.monotonic() - started < 60

    # retry: a run that failed for a reason outside the release (the load generator was down,
    # so noDataPolicy=fail rolled it back) is run again on the same revision once fixed.
    kube.custom.patch_namespaced_custom_object(
        "canary.dev", "v1alpha1", kube.namespace, "canaries", "podinfo", {"spec": {"analysis": {"interval": "2s"}}})
    env.mesh.client.set_load(kube.namespace, "podinfo", 0)
    time.sleep(11)  # let v3's canary traffic leave the 10 s query window
    ship(kube, "podinfo", "4")
    failed = kube.wait_for_phase("podinfo", "Failed", "Succeeded", timeout=90)
    assert failed["phase"] == "Failed", failed
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    done = cli(env, kube, "retry", "podinfo")
    assert done.returncode == 0, done.stderr
    final = wait_for(lambda: kube.status("podinfo"),
                     lambda st: st.get("phase") in ("Succeeded", "Failed") and st.get("runStarted") != failed.get("runStarted"),
                     timeout=120, what="the retried run to end")
    assert final["phase"] == "Succeeded", final
    assert final["lastAppliedSpec"] == failed["lastAppliedSpec"], "retry runs the same revision again"
    assert template_version(kube.deployment("podinfo-primary")) == "4"
