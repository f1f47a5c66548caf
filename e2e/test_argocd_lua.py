"""Argo CD's view of a Canary: integrations/argocd's Lua run on the live objects of real releases.

The health check is evaluated on the Canary as the API server returns it, from the moment it is
created (before any controller has seen it) through a paused, a promoted, a faulty, a rolled-back
and a retried release; a recorder evaluates it on every distinct object seen on the way, and each
must get the health the README's table gives its state. Every on-call step goes through an
action's Lua: discovery must offer it, and the merge patch Argo CD would send is applied to the
API server, where the controller must act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.argocd_lua import Health, action_patch, discover, health
from e2e.harness.environment import Environment
from e2e.harness.kube import GROUP, PLURAL, VERSION, Kube, wait_for
from e2e.harness.release import ship, template_version
from e2e.harness.sampling import Recorder

RPS = 40
NAME = "podinfo"


@dataclass(frozen=True)
class Seen:
    """One live Canary and the health Argo CD gives it."""

    generation: int
    observed: int | None
    phase: str | None
    stalled: bool
    paused: bool
    health: Health


def seen(obj: dict[str, Any]) -> Seen:
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    stalled = any(c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or [])
    paused = ((obj["metadata"].get("annotations") or {}).get("canary.dev/pause") or "").lower() == "true"
    return Seen(int(obj["metadata"]["generation"]), None if observed is None else int(observed), status.get("phase"),
                stalled, paused, health(obj))


def expected_health(s: Seen) -> str:
    """The README's table, from the object's state, independently of the Lua."""
    if s.observed is None or s.observed < s.generation:
        return "Progressing"
    if s.stalled or s.phase == "Failed":
        return "Degraded"
    if s.paused:
        return "Suspended"
    return "Healthy" if s.phase in ("Initialized", "Succeeded") else "Progressing"


def enabled(obj: dict[str, Any]) -> set[str]:
    return {name for name, action in discover(obj).items() if not action.disabled}


def run_action(kube: Kube, action: str) -> dict[str, Any]:
    """What Argo CD does for "Actions > ``action``": discovery must offer it; the action's Lua
    runs on the live object and the merge patch from the live object to its result is sent."""
    live = kube.canary(NAME)
    assert action in enabled(live), f"{action} is not offered on {live.get('status')}"
    patch = action_patch(action, live)
    # Nothing for the status subresource (Argo CD would send a status part there).
    assert set(patch) == {"metadata"} and set(patch["metadata"]) == {"annotations"}, patch
    stored: dict[str, Any] = kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, NAME, patch, _content_type="application/merge-patch+json")
    return stored


def handled(kube: Kube, short: str) -> str | None:
    value = (kube.status(NAME).get("handledAnnotations") or {}).get(short)
    return None if value is None else str(value)


def set_interval(kube: Kube, interval: str) -> None:
    """A spec edit; waits until the controller has observed it."""
    edited = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, NAME,
                                                        {"spec": {"analysis": {"interval": interval}}})
    generation = int(edited["metadata"]["generation"])
    assert health(edited).status == "Progressing", "an edit the controller has not observed is Progressing"
    wait_for(lambda: kube.status(NAME), lambda st: int(st.get("observedGeneration") or 0) >= generation,
             timeout=30, what=f"the controller to observe generation {generation}")


def test_health_and_actions_on_live_canaries(env: Environment, kube: Kube, start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1")))
    kube.create(app.canary(NAME, kube.namespace, interval="2s", step_weight=20, max_weight=60, threshold=2))

    with Recorder(lambda: seen(kube.canary(NAME))) as recorder:
        # Before any controller runs: the Canary exactly as Argo CD first sees it after a sync.
        fresh = kube.canary(NAME)
        assert health(fresh) == Health("Progressing", "waiting for the canary controller to observe generation 1")
        assert enabled(fresh) == {"pause"}

        start_controller()
        kube.wait_for_phase(NAME, "Initialized", timeout=90)
        got = health(kube.canary(NAME))
        assert got.status == "Healthy", got
        env.mesh.client.set_load(kube.namespace, NAME, RPS)

        # v2: paused at its first step, resumed, then promoted, all through the actions. A
        # one-minute interval holds it at that step for as long as this takes, even on a busy
        # machine, so every action meets the phase it is meant for.
        set_interval(kube, "1m")
        ship(kube, NAME, "2")
        live = wait_for(lambda: kube.canary(NAME), lambda o: int(o["status"].get("canaryWeight") or 0) >= 20,
                        timeout=60, what="the first step of v2")
        assert health(live).status == "Progressing"
        assert enabled(live) == {"promote", "rollback", "pause"}
        run_action(kube, "pause")
        wait_for(lambda: handled(kube, "pause"), lambda v: v == "true", timeout=30, what="the pause receipt")
        live = kube.canary(NAME)
        got = health(live)
        assert got.status == "Suspended" and got.message.startswith("paused by the canary.dev/pause annotation"), got
        reconciling = kube.condition(NAME, "Reconciling")
        assert reconciling is not None and reconciling["reason"] == "Paused", reconciling
        assert enabled(live) == {"promote", "rollback", "resume"}
        run_action(kube, "resume")
        wait_for(lambda: handled(kube, "pause"), lambda v: v is None, timeout=30, what="the resume receipt")
        assert health(kube.canary(NAME)).status != "Suspended"
        run_action(kube, "promote")
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=60)
        assert final["phase"] == "Succeeded", final
        assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
        assert health(kube.canary(NAME)).status == "Healthy"

        # v3 fails its checks: Degraded, with the reason, and retry is offered.
        set_interval(kube, "2s")
        ship(kube, NAME, "3-broken", error_rate=0.5)
        failed = kube.wait_for_phase(NAME, "Failed", "Succeeded", timeout=120)
        assert failed["phase"] == "Failed", failed
        live = kube.canary(NAME)
        got = health(live)
        assert got.status == "Degraded" and failed["message"] in got.message, got
        assert enabled(live) == {"retry", "pause"}

        # v4 is rolled back by the rollback action while it waits at its first step ...
        set_interval(kube, "1m")
        ship(kube, NAME, "4")
        kube.wait_for_phase(NAME, "Progressing", timeout=30)
        run_action(kube, "rollback")
        rolled_back = kube.wait_for_phase(NAME, "Failed", timeout=30)
        assert "requested with the Argo CD rollback action" in rolled_back["message"], rolled_back
        assert health(kube.canary(NAME)).status == "Degraded"
        assert template_version(kube.deployment(f"{NAME}-primary")) == "2"

        # ... and the retry action runs it again, to the end this time.
        set_interval(kube, "2s")
        run_action(kube, "retry")
        final = wait_for(lambda: kube.status(NAME),
                         lambda st: st.get("phase") in ("Succeeded", "Failed")
                         and st.get("runStarted") != rolled_back.get("runStarted"),
                         timeout=120, what="the retried run of v4 to end")
        assert final["phase"] == "Succeeded", final
        assert template_version(kube.deployment(f"{NAME}-primary")) == "4"
        assert health(kube.canary(NAME)).status == "Healthy"

    observed = [s for s in recorder.since(0) if s is not None]
    path = [f"{s.phase}{' (paused)' if s.paused else ''}: {s.health.status}" for s in observed]
    print("health on the live Canary:", " -> ".join(p for i, p in enumerate(path) if i == 0 or path[i - 1] != p))
    wrong = [s for s in observed if s.health.status != expected_health(s)]
    assert not wrong, f"health disagrees with the Canary's state: {wrong}"
    assert all(s.health.message for s in observed), [s for s in observed if not s.health.message]
    assert {s.health.status for s in observed} == {"Progressing", "Healthy", "Suspended", "Degraded"}
    phases = {s.phase for s in observed}
    assert {None, "Initialized", "Progressing", "Succeeded", "Failed"} <= phases, phases
