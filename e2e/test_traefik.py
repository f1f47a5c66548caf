"""Releases through a real Traefik: real HTTP requests, routed by the objects the controller writes.

Traefik v3 (built from the Go module proxy, ``e2e/cluster/build.sh``) reads the HTTPRoute the
controller writes (``provider: gatewayapi`` with ``gatewayRefs`` to its Gateway) or the
TraefikService (``provider: traefik``), resolves the Services' EndpointSlices itself, and proxies
every request to a real HTTP server listening at the pod's own address (``e2e/podnet``). The
controller judges the release from Traefik's own Prometheus metrics (``--mesh traefik``).

1. A healthy release through the Gateway API: at every weight, once Traefik says it applies it,
   the share of requests Traefik's own counters give the canary matches the weight.
2. Failing releases are rolled back and Traefik then sends the canary nothing: errors (found by
   the judge), latency (found by the builtin ``request-duration`` check); and the on-call
   rollback annotation, timed from the annotation to Traefik applying 0%, over repeated tries.
3. A/B by header through HTTPRoute matches: only matching requests reach the canary.
4. Mirroring: Traefik's Gateway API provider has no RequestMirror. Traefik answers every request
   of a rule carrying one with 500 (shown with a route written by hand), and its GatewayClass
   does not list the feature, so the controller refuses a mirrored Canary on that Gateway before
   writing a route.
5. The healthy release of (1) through ``provider: traefik`` and a user's IngressRoute.
6. The controller SIGKILLed mid-release: Traefik keeps serving from the last route, no request
   fails, and the restarted controller finishes the release.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.controller import Controller
from e2e.harness.environment import POD_NETWORK_NEEDS_LOCAL_CLUSTER, Environment
from e2e.harness.figures import summary
from e2e.harness.gate import Gate, serve_gate
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import GATEWAY_GROUP, ReleaseWatcher, route_shares, ship, template_version
from e2e.harness.traffic import assert_share_matches
from e2e.podnet.launcher import PodNetwork
from e2e.traefik.gateway import TraefikGateway
from e2e.traefik.load import Load, LoadStats

NAME = "podinfo"
PRIMARY, CANARY = f"{NAME}-primary", f"{NAME}-canary"
RPS = 50.0
#: Requests counted at each weight: enough for a 4-sigma binomial tolerance of about ±11 points.
PER_STEP = 300
ONCALL_TRIES = 5
#: How long a deleted Pod keeps serving (its termination grace period): longer than Traefik
#: takes to drop it from its endpoints (it throttles provider updates to one per 2 s).
DRAIN_SECONDS = 5


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


def _host(kube: Kube) -> str:
    return f"{NAME}.{kube.namespace}.traefik.test"


def _start(env: Environment, start_controller: StartController) -> tuple[TraefikGateway, PodNetwork, Controller]:
    """Traefik, the pod network and a controller reading Traefik's metrics."""
    if env.control_plane is None:
        pytest.skip(POD_NETWORK_NEEDS_LOCAL_CLUSTER)
    traefik, pods = env.traefik(), env.pod_network()
    return traefik, pods, start_controller(mesh="traefik")


def _canary(kube: Kube, traefik: TraefikGateway, *, provider: str = "gatewayapi", gate: Gate | None = None,
            **args: Any) -> dict[str, Any]:
    """The Canary behind Traefik: its Gateway and hostname (gatewayapi), or a TraefikService
    (traefik); with ``gate``, every step and the promotion wait for one of its permits."""
    args.setdefault("interval", "2s")
    args.setdefault("metrics", [app.success_rate_check(99, "10s"), app.latency_check(250, "10s")])
    webhooks = [] if gate is None else [
        {"name": "one-step", "type": kind, "url": gate.url, "timeout": "2s"}
        for kind in ("confirm-traffic-increase", "confirm-promotion")]
    if provider == "gatewayapi":
        args["service_options"] = {
            "gatewayRefs": [{"name": traefik.gateway_name, "namespace": traefik.gateway_namespace}],
            "hosts": [_host(kube)],
        }
    return app.canary(NAME, kube.namespace, provider=provider, webhooks=webhooks, **args)


def _ingress_route(kube: Kube, traefik: TraefikGateway) -> dict[str, Any]:
    """What a Flagger user writes next to a ``provider: traefik`` Canary: an IngressRoute that
    sends the hostname to the TraefikService the controller keeps."""
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": NAME, "namespace": kube.namespace},
        "spec": {
            "entryPoints": [traefik.entrypoint],
            "routes": [{"match": f"Host(`{_host(kube)}`)", "kind": "Rule",
                        "services": [{"name": NAME, "kind": "TraefikService"}]}],
        },
    }


def _install(kube: Kube, pods: PodNetwork, canary: dict[str, Any], *, replicas: int = 2) -> None:
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=replicas,
                               drain_seconds=DRAIN_SECONDS))
    kube.create(canary)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    pods.wait_serving(kube.namespace, {"app": PRIMARY}, replicas)


def _applied(traefik: TraefikGateway, kube: Kube, canary_share: float, *, timeout: float = 30,
             interval: float = 0.2) -> None:
    """Wait until Traefik's own configuration (its API) splits the apex at ``canary_share``."""
    wait_for(lambda: traefik.applied_split(kube.namespace, NAME),
             lambda split: split is not None and abs(split.get(CANARY, 0.0) - canary_share) < 1e-6,
             timeout=timeout, what=f"Traefik applying {canary_share:.0%} to {CANARY}", interval=interval)


def _served(traefik: TraefikGateway, kube: Kube, load: Load, count: int) -> dict[str, int]:
    """Requests Traefik sent to the primary and the canary while ``count`` more went to either,
    by Traefik's own counters. Counting starts once every request ``load`` had sent by now has
    been answered: Traefik counts a request when it completes, so one routed before a split the
    caller saw applied (a slow canary's, say) must not be counted after it."""
    def by_backend() -> dict[str, int]:
        return traefik.requests_by_backend(kube.namespace, (PRIMARY, CANARY))

    now = load.snapshot()
    wait_for(load.snapshot, lambda s: s.answered_all_sent_by(now), timeout=60, what="the requests in flight answered")
    before = by_backend()
    after = wait_for(by_backend, lambda now: sum(now.values()) - sum(before.values()) >= count,
                     timeout=120, what=f"{count} requests through Traefik")
    # Traefik drops a service's series when the service leaves its configuration (a
    # TraefikService leaves a zero-weight backend out), so a counter can start again from zero.
    return {b: after.get(b, 0) - before.get(b, 0) if after.get(b, 0) >= before.get(b, 0) else after.get(b, 0)
            for b in (PRIMARY, CANARY)}


def _reachable(load: Load) -> LoadStats:
    """Wait until Traefik routes the load's hostname (404 until it has loaded the route); what
    the load had seen then, the baseline of :func:`_no_failed_requests`."""
    return wait_for(load.snapshot, lambda s: s.by_status.get(200, 0) > 0, timeout=60,
                    what="Traefik routing the hostname")


def _weight(kube: Kube) -> int:
    return int(kube.status(NAME).get("canaryWeight") or 0)


def _at_weight(kube: Kube, weight: int, *, timeout: float = 60) -> None:
    wait_for(lambda: _weight(kube), lambda w: w == weight, timeout=timeout, what=f"the release at {weight}%")


def _steps_match_weights(traefik: TraefikGateway, kube: Kube, load: Load, gate: Gate,
                         weights: tuple[int, ...]) -> dict[int, float]:
    """Let the release take one step at a time; at each, once Traefik applies the weight, the
    share its counters give the canary must match it. Returns the share seen at each weight."""
    seen: dict[int, float] = {}
    for weight in weights:
        gate.grant(1)
        _at_weight(kube, weight)
        _applied(traefik, kube, weight / 100)
        requests = _served(traefik, kube, load, PER_STEP)
        assert_share_matches(requests, weight / 100, backend=CANARY)
        seen[weight] = requests[CANARY] / sum(requests.values())
    return seen


def _nothing_to_the_canary(traefik: TraefikGateway, kube: Kube, load: Load) -> None:
    """Traefik applies 0% to the canary, and from then on only primary pods answer the load."""
    _applied(traefik, kube, 0.0)
    now = load.snapshot()
    settled = wait_for(load.snapshot, lambda s: s.answered_all_sent_by(now), timeout=60,
                       what="the requests in flight answered")
    after = wait_for(load.snapshot, lambda s: s.minus(settled).answered >= 100, timeout=60,
                     what="100 more answers").minus(settled)
    canary = {pod: n for pod, n in after.by_pod.items() if not pod.split("/")[-1].startswith(f"{PRIMARY}-")}
    assert not canary, f"after the rollback canary pods still answered: {canary} of {after.answered}"


def _none_terminating(kube: Kube) -> None:
    wait_for(lambda: [p["metadata"]["name"] for p in kube.pods("") if p["metadata"].get("deletionTimestamp")],
             lambda terminating: not terminating, timeout=60, what="no Pod of the namespace terminating")


def _no_failed_requests(load: Load, since: LoadStats) -> None:
    stats = load.snapshot().minus(since)
    not_ok = {code: n for code, n in stats.by_status.items() if code != 200}
    assert not stats.errors and not not_ok and stats.answered > 0, (
        f"requests failed through Traefik: statuses {dict(stats.by_status)}, no answer {dict(stats.errors)}")


def test_healthy_release_through_the_gateway_api_splits_as_weighted(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    _install(kube, pods, _canary(kube, traefik, gate=gate, step_weight=20, max_weight=60))
    _applied(traefik, kube, 0.0)
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load, ReleaseWatcher(kube, NAME) as watcher:
        baseline = _reachable(load)
        ship(kube, NAME, "2")
        pods.wait_serving(kube.namespace, {"app": NAME}, 2)
        seen = _steps_match_weights(traefik, kube, load, gate, (20, 40, 60))
        gate.grant(1)
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=120)
        _nothing_to_the_canary(traefik, kube, load)
        _no_failed_requests(load, baseline)
    print("canary share by Traefik's counters at each weight: "
          + ", ".join(f"{w}% -> {s:.1%}" for w, s in seen.items()))
    assert final["phase"] == "Succeeded", final
    assert watcher.weights()[:4] == [0, 20, 40, 60], watcher.weights()
    assert template_version(kube.deployment(PRIMARY)) == "2"


def test_errors_are_rolled_back_by_the_judge_on_traefiks_metrics(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    # No threshold checks: only the judge, comparing the canary's errors with the primary's on
    # Traefik's per-service counters, can stop this release. A 10-minute interval keeps it at
    # its first step, so the rollback comes from a look between ticks.
    _install(kube, pods, _canary(kube, traefik, interval="10m", metrics=[], step_weight=50, max_weight=50,
                                 judge={"lookEvery": "2s"}))
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load:
        _reachable(load)
        ship(kube, NAME, "2", error_rate=0.3)
        final = kube.wait_for_phase(NAME, "Failed", "Succeeded", timeout=300)
        assert final["phase"] == "Failed", final
        assert "judge" in final.get("message", ""), final
        _nothing_to_the_canary(traefik, kube, load)
    assert template_version(kube.deployment(PRIMARY)) == "1"


def test_latency_is_rolled_back_by_the_builtin_check_on_traefiks_histogram(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    _install(kube, pods, _canary(kube, traefik, metrics=[app.latency_check(250, "10s")], step_weight=50,
                                 max_weight=50, threshold=2))
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load:
        _reachable(load)
        ship(kube, NAME, "2", latency_ms=600)
        final = kube.wait_for_phase(NAME, "Failed", "Succeeded", timeout=180)
        assert final["phase"] == "Failed", final
        assert "request-duration" in final.get("message", ""), final
        _nothing_to_the_canary(traefik, kube, load)
    assert template_version(kube.deployment(PRIMARY)) == "1"


def test_oncall_rollback_reaches_traefik(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    # A long interval: each release sits at its first step, so only the annotation ends it.
    _install(kube, pods, _canary(kube, traefik, interval="10m", step_weight=40, max_weight=40))
    route: list[float] = []
    took: list[float] = []
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load:
        baseline = _reachable(load)
        for attempt in range(ONCALL_TRIES):
            ship(kube, NAME, str(attempt + 2))
            _at_weight(kube, 40)
            _applied(traefik, kube, 0.4)
            # On-call acts on a canary they have seen taking its share of live traffic. Traefik
            # applies a provider's changes at most once per 2 s (its providersThrottleDuration),
            # so the last change before the annotation (the previous try's Pods leaving their
            # EndpointSlices) must be older than that, or Traefik's throttle and not the
            # controller sets the time: no Pod terminating any more, then 150 requests, which at
            # 50 a second take 3 s.
            _none_terminating(kube)
            assert _served(traefik, kube, load, 150)[CANARY] > 0
            started = time.monotonic()
            kube.annotate_canary(NAME, {"canary.dev/rollback": f"try {attempt}"})
            wait_for(lambda: route_shares(kube, NAME, "gatewayapi").get(CANARY), lambda share: share == 0.0,
                     timeout=30, what="the HTTPRoute sending nothing to the canary", interval=0.02)
            route.append(time.monotonic() - started)
            _applied(traefik, kube, 0.0, timeout=30, interval=0.02)
            took.append(time.monotonic() - started)
            kube.wait_for_phase(NAME, "Failed", timeout=60)
            kube.annotate_canary(NAME, {"canary.dev/rollback": None})
        _nothing_to_the_canary(traefik, kube, load)
        _no_failed_requests(load, baseline)
    # How fast is a figure (docs/testing.md), not an assertion: with both cores saturated a CI
    # run took longer than the 2 s this once asserted, while the controller did nothing wrong.
    print(summary("rollback annotation -> HTTPRoute written", route))
    print(summary("rollback annotation -> Traefik applies 0% to the canary", took))


def test_ab_by_header_only_matching_requests_reach_the_canary(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    body = _canary(kube, traefik, metrics=[])
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis.update(iterations=2, match=[{"headers": {"x-canary": {"exact": "insider"}}}], webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}])
    _install(kube, pods, body)
    host = _host(kube)
    with Load(traefik.web_url, host=host, rps=RPS / 2, headers={"x-canary": "insider"}) as insiders, \
            Load(traefik.web_url, host=host, rps=RPS / 2, headers={"x-canary": "outsider"}) as others:
        ship(kube, NAME, "2")
        kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
        pods.wait_serving(kube.namespace, {"app": NAME}, 2)
        # Traefik follows the route through its watch: wait until the A/B rule answers.
        first = wait_for(insiders.snapshot, lambda s: s.by_version.get("2", 0) > 0, timeout=30,
                         what="a matching request answered by the canary")
        # Requests sent before Traefik reloaded may still be in flight: count from a little later.
        wait_for(insiders.snapshot, lambda s: s.minus(first).answered >= 20, timeout=30, what="20 more answers")
        inside, outside = insiders.snapshot(), others.snapshot()
        wait_for(lambda: (insiders.snapshot().minus(inside).answered, others.snapshot().minus(outside).answered),
                 lambda n: min(n) >= 100, timeout=120, what="100 more requests of each kind")
        matched = insiders.snapshot().minus(inside).by_version
        unmatched = others.snapshot().minus(outside).by_version
        assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the A/B stage while sampling"
        assert set(matched) == {"2"}, f"matching requests answered by {matched}"
        assert set(unmatched) == {"1"}, f"other requests answered by {unmatched}"
        gate.approved.set()
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment(PRIMARY)) == "2"



def test_mirroring_is_refused_on_traefik_which_would_fail_every_mirrored_request(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "by-hand", "namespace": kube.namespace},
                 "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": app.PORT, "targetPort": "http"}]}})
    pods.wait_serving(kube.namespace, {"app": NAME}, 1)
    # What a mirrored release's route would do on Traefik: a rule with a RequestMirror filter.
    parent = {"name": traefik.gateway_name, "namespace": traefik.gateway_namespace}
    backend = {"name": "by-hand", "port": app.PORT}
    mirrored = f"mirrored.{_host(kube)}"
    kube.custom.create_namespaced_custom_object(GATEWAY_GROUP, "v1", kube.namespace, "httproutes", {
        "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "by-hand"},
        "spec": {"parentRefs": [parent], "hostnames": [mirrored], "rules": [{
            "backendRefs": [backend],
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": backend}}]}]}})
    with Load(traefik.web_url, host=mirrored, rps=RPS) as by_hand:
        # 404 until Traefik has loaded the route.
        loaded = wait_for(by_hand.snapshot, lambda s: s.answered > s.by_status.get(404, 0), timeout=60,
                          what="Traefik serving the hand-written route")
        answered = wait_for(by_hand.snapshot, lambda s: s.minus(loaded).answered >= 50, timeout=60,
                            what="50 answers").minus(loaded)
    assert set(answered.by_status) == {500}, f"Traefik answered a RequestMirror rule with {dict(answered.by_status)}"

    body = _canary(kube, traefik, metrics=[])
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis.update(iterations=2, mirror=True)
    kube.create(body)
    stalled = wait_for(lambda: kube.condition(NAME, "Stalled"), lambda c: c is not None, timeout=90,
                       what="the mirrored Canary refused for the Gateway's missing feature")
    assert stalled is not None and stalled["reason"] == "GatewayFeatureUnsupported", stalled
    for part in ("HTTPRouteRequestMirror", "traefik.io/gateway-controller", "spec.analysis.mirror"):
        assert part in stalled["message"], stalled["message"]
    assert kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", NAME) is None, "a route was written"


def test_healthy_release_through_a_traefikservice_splits_as_weighted(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    traefik, pods, _ = _start(env, start_controller)
    _install(kube, pods, _canary(kube, traefik, provider="traefik", gate=gate, step_weight=25, max_weight=50))
    kube.create(_ingress_route(kube, traefik))
    _applied(traefik, kube, 0.0)
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load:
        baseline = _reachable(load)
        ship(kube, NAME, "2")
        pods.wait_serving(kube.namespace, {"app": NAME}, 2)
        seen = _steps_match_weights(traefik, kube, load, gate, (25, 50))
        gate.grant(1)
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=120)
        _nothing_to_the_canary(traefik, kube, load)
        _no_failed_requests(load, baseline)
    print("TraefikService: canary share at each weight: " + ", ".join(f"{w}% -> {s:.1%}" for w, s in seen.items()))
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment(PRIMARY)) == "2"


def test_controller_killed_mid_release_traefik_keeps_serving_and_the_release_resumes(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    traefik, pods, controller = _start(env, start_controller)
    _install(kube, pods, _canary(kube, traefik, step_weight=20, max_weight=80))
    with Load(traefik.web_url, host=_host(kube), rps=RPS) as load, ReleaseWatcher(kube, NAME) as watcher:
        baseline = _reachable(load)
        ship(kube, NAME, "2")
        wait_for(lambda: _weight(kube), lambda w: w >= 40, timeout=90, what="the release at 40%")
        controller.kill()
        # What Traefik serves is the route as written, which the status may lead by a step: the
        # status is written first, and a kill between the two writes leaves the route behind until
        # the next controller carries the step out (under load, CI met exactly that).
        at_kill = route_shares(kube, NAME, "gatewayapi").get(CANARY, 0.0)
        assert at_kill > 0, "the route had a canary share when the controller was killed"
        _applied(traefik, kube, at_kill)
        # With no controller, Traefik goes on serving both versions from the route it has.
        during = _served(traefik, kube, load, 200)
        assert during[CANARY] > 0 and during[PRIMARY] > 0, during
        controller.start()
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=150)
        _nothing_to_the_canary(traefik, kube, load)
        _no_failed_requests(load, baseline)
    assert final["phase"] == "Succeeded", final
    assert 80 in watcher.weights(), watcher.weights()
    assert template_version(kube.deployment(PRIMARY)) == "2"

