"""Fault suite, dependencies: Prometheus and the kube-apiserver go away mid-release and come back.

Both are stopped for real (the process ends; clients see connections refused) and started again
with the same flags, port and data, so what the controller meets is what a restart of either
looks like in a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness.chaos import scaled
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ReleaseWatcher, install_app, route_shares, ship, template_version

pytestmark = pytest.mark.chaos

RPS = 40
ALL_TO_PRIMARY = {"podinfo-primary": 1.0, "podinfo-canary": 0.0}
#: A graceful stop's grace before SIGKILL. The API server stops listening at SIGTERM but lingers
#: ~10 s with watches open, so the outage is grace + start-up; it must stay well inside the
#: controller's 10 s renew deadline, or the controller rightly exits (its Deployment restarts it).
APISERVER_GRACE_S = 1.0


def _status_after(kube: Kube, field: str, value: int) -> dict[str, Any]:
    return wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get(field) or 0) > value, timeout=90,
                    what=f"status.{field} to go past {value}")


def _metric_checks(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in status.get("checks") or [] if c.get("kind") == "metric"]


@contextmanager
def _prometheus_stopped(env: Environment) -> Iterator[None]:
    """Prometheus down for the block, and up again after it even when the test fails."""
    env.prometheus.stop()
    try:
        yield
    finally:
        if not env.prometheus.process.alive():
            env.prometheus.start_again()


def test_c_prometheus_stopped_mid_release_holds_the_weight_then_the_release_finishes(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    """A metrics outage is not a canary failure: while Prometheus is down the checks are
    Unavailable, the weight holds and nothing is counted, not even with threshold 2; once it is
    back the count of outage ticks starts over and the release goes on and succeeds."""
    outage_ticks = scaled(2, 5)
    threshold = 2
    # Room for the outage and the ticks while Prometheus starts again (it replays its WAL);
    # test_e shows what happens past the limit.
    error_limit = outage_ticks + 10
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", interval="2s", step_weight=20, max_weight=60, threshold=threshold,
                consecutive_error_limit=error_limit)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    with ReleaseWatcher(kube, "podinfo") as watcher:
        ship(kube, "podinfo", "2")
        at_stop = wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get("canaryWeight") or 0) >= 20,
                           timeout=60, what="the release to reach 20%")
        failed_before = int(at_stop.get("failedChecks") or 0)
        with _prometheus_stopped(env):
            first_outage = _status_after(kube, "consecutiveErrors", 0)
            missing_from = time.monotonic()
            during = _status_after(kube, "consecutiveErrors", outage_ticks - 1)
            restarting = time.monotonic()
        final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=150)

    unavailable = _metric_checks(during)
    assert unavailable and all(c["verdict"] == "Unavailable" for c in unavailable), (
        f"checks while Prometheus is down: {unavailable}")
    assert all("did not answer" in c.get("message", "") for c in unavailable), unavailable
    assert int(during.get("failedChecks") or 0) == failed_before, f"an outage counted a failed check: {during}"
    held = {(s.phase, s.weight) for s in watcher.samples if missing_from <= s.at <= restarting}
    held |= {(str(first_outage["phase"]), int(first_outage["canaryWeight"]))}
    assert len(held) == 1 and next(iter(held))[0] == "Progressing", (
        f"the weight must hold while the metrics are missing: {sorted(held)} in {watcher.samples}")
    reasons = {e["reason"] for e in kube.events("podinfo")}
    assert "MetricsUnavailable" in reasons, reasons

    assert final["phase"] == "Succeeded", final
    assert int(final.get("failedChecks") or 0) < threshold
    assert int(final.get("consecutiveErrors") or 0) == 0, "a tick with data starts the count over"
    weights = watcher.weights()
    assert weights[weights.index(20):].count(60) >= 1, f"the release went on through every step: {weights}"
    assert template_version(kube.deployment("podinfo-primary")) == "2"
    assert route_shares(kube, "podinfo", env.route_provider) == ALL_TO_PRIMARY


def test_e_prometheus_down_past_the_error_limit_rolls_back_and_says_why(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    """Past consecutiveErrorLimit each outage tick counts as failed; the rollback's message says
    it was the metrics provider, not the canary."""
    error_limit = 2
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", interval="2s", step_weight=20, max_weight=60, threshold=2,
                consecutive_error_limit=error_limit)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    ship(kube, "podinfo", "2")
    wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get("canaryWeight") or 0) >= 20,
             timeout=60, what="the release to reach 20%")
    with _prometheus_stopped(env):
        final = kube.wait_for_phase("podinfo", "Failed", "Succeeded", timeout=90)

    assert final["phase"] == "Failed", final
    assert int(final.get("consecutiveErrors") or 0) > error_limit, final
    assert "the metrics provider was unavailable" in final["message"], final["message"]
    assert f"more than consecutiveErrorLimit {error_limit}" in final["message"], final["message"]
    assert all(c["verdict"] == "Unavailable" for c in _metric_checks(final)), final.get("checks")
    reasons = [e["reason"] for e in kube.events("podinfo")]
    assert "MetricsUnavailable" in reasons and "RolledBack" in reasons, reasons
    assert template_version(kube.deployment("podinfo-primary")) == "1"
    assert route_shares(kube, "podinfo", env.route_provider) == ALL_TO_PRIMARY


def test_d_kube_apiserver_restarted_mid_release_the_controller_reconnects_and_finishes(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    """The controller rides out API server restarts: it keeps its Lease (each outage is shorter
    than the renew deadline), its watches reconnect (a revision shipped after the last restart is
    seen and released), and the release ends Succeeded."""
    if env.control_plane is None:
        pytest.skip("restarting the kube-apiserver needs the local control plane, not E2E_KUBECONFIG")
    plane = env.control_plane
    restarts = scaled(1, 3)
    env.use_flavour("linkerd")
    controller = start_controller()
    pid = controller.process.pid if controller.process else None
    install_app(kube, "podinfo", interval="2s", step_weight=10, max_weight=60)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)

    outages: list[float] = []
    with ReleaseWatcher(kube, "podinfo") as watcher:
        ship(kube, "podinfo", "2")
        weight = int(_status_after(kube, "canaryWeight", 0)["canaryWeight"])
        for index in range(restarts):
            began = time.monotonic()
            # A crash first; at full size also SIGTERM with a short grace, as a Pod's termination
            # would give it. Either outage must stay shorter than the renew deadline (10 s).
            plane.restart_apiserver(grace=0 if index % 2 == 0 else APISERVER_GRACE_S)
            outages.append(time.monotonic() - began)
            assert controller.alive(), (
                f"the controller exited during a {outages[-1]:.1f}s API server outage (renew deadline 10 s):\n"
                f"{controller.log_tail(5)}")
            # The controller acts after the restart: its writes reach the new API server.
            weight = int(_status_after(kube, "canaryWeight", weight)["canaryWeight"])
        # Only a watch event tells the controller about a new revision: the watches reconnected.
        ship(kube, "podinfo", "3")
        final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=180)

    print(f"kube-apiserver outages: {', '.join(f'{s:.1f}s' for s in outages)}")
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "3", "the revision shipped after the restarts won"
    assert route_shares(kube, "podinfo", env.route_provider) == ALL_TO_PRIMARY
    assert controller.alive() and controller.process is not None and controller.process.pid == pid, (
        "the same controller process finished the release (it reconnected; it did not exit and restart)")
    assert 60 in watcher.weights(), watcher.weights()
