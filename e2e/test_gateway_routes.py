"""Scenarios of Flagger's Gateway API fields.

1. gatewayRefs to a Gateway, hosts, timeouts and header filters produce an HTTPRoute with
   exactly those, kept through every state of a release, which completes; held at 50/50, the
   data plane sends half the north-south requests for the route's hostname to the canary. No
   metric checks: the builtin checks measure the mesh's east-west traffic.
2. A/B testing by header (``analysis.match``) through the mesh: while the canary is judged, the
   data plane sends every matching request, and only those, to the canary.
3. Session affinity through the mesh: a request carrying the run's cookie reaches the canary
   whatever the split says.
4. Mirroring with mirrorWeight: while the canary is judged, the primary answers every request
   and the canary gets a copy of about mirrorWeight percent of them.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.gate import Gate, serve_gate
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import GATEWAY_GROUP, ReleaseWatcher, ship, template_version
from e2e.harness.route_watch import ChangeRecorder, custom
from e2e.harness.traffic import assert_share_matches

NAME = "podinfo"
PARENTS = [
    {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"},
    {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "internal"},
]
HOSTS = ["podinfo.example.com", "www.podinfo.example.com"]
SERVICE_OPTIONS = {
    "gatewayRefs": [
        {"name": "public", "namespace": "gateways", "sectionName": "https"},
        {"name": "internal"},
    ],
    "hosts": HOSTS,
    "timeout": "1m30s",
    "backendTimeout": "2.5s",
    "headers": {
        "request": {"set": {"x-release": "canary"}, "remove": ["x-debug"]},
        "response": {"add": {"x-served-by": "podinfo"}},
    },
}
FILTERS = [
    {"type": "RequestHeaderModifier",
     "requestHeaderModifier": {"set": [{"name": "x-release", "value": "canary"}], "remove": ["x-debug"]}},
    {"type": "ResponseHeaderModifier",
     "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "podinfo"}]}},
]
TIMEOUTS = {"request": "1m30s", "backendRequest": "2s500ms"}


def _canary(namespace: str) -> dict[str, Any]:
    body = app.canary(NAME, namespace, provider="gatewayapi", step_weight=50, max_weight=50, metrics=[])
    body["spec"]["service"].update(copy.deepcopy(SERVICE_OPTIONS))
    return body


def _route(kube: Kube) -> dict[str, Any]:
    route = kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", NAME)
    assert route is not None, "no HTTPRoute"
    return route


def _split(route: dict[str, Any]) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]}


def _assert_carries_the_options(route: dict[str, Any]) -> None:
    spec = route["spec"]
    assert spec["parentRefs"] == PARENTS
    assert spec["hostnames"] == HOSTS
    [rule] = spec["rules"]
    assert rule["filters"] == FILTERS
    assert rule["timeouts"] == TIMEOUTS
    # The API server's defaults: the one rule matches every request.
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_gateway_refs_hosts_and_filters_reach_the_route_and_a_release_completes(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    env.use_flavour("gatewayapi")
    start_controller()
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    body = _canary(kube.namespace)
    # A confirm-promotion gate holds the release at 50/50 while north-south traffic is measured.
    body["spec"]["analysis"]["webhooks"] = [
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}]
    kube.create(body)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)

    initial = _route(kube)
    _assert_carries_the_options(initial)
    assert _split(initial) == {f"{NAME}-primary": 100, f"{NAME}-canary": 0}

    # Every state the route goes through, from the API server's watch: none may lose an option.
    routes = [custom(env.api, "HTTPRoute", GATEWAY_GROUP, "v1", "httproutes")]
    with ChangeRecorder(env.api, kube.namespace, routes) as recorder, ReleaseWatcher(kube, NAME) as watcher:
        ship(kube, NAME, "2")
        kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
        # North-south: requests to the route's hostname, as a Gateway would send them.
        client, host = env.mesh.client, HOSTS[0]
        wait_for(lambda: client.host_route(host), lambda r: r is not None and r.percent.get(f"{NAME}-canary") == 50,
                 timeout=30, what=f"the data plane routing {host} 50/50")
        client.reset_stats(host=host)
        client.set_host_load(host, 40, namespace=kube.namespace)
        stats = wait_for(lambda: client.host_stats(host), lambda s: s.total >= 200, timeout=60,
                         what=f"200 requests to {host}")
        client.set_host_load(host, 0, namespace=kube.namespace)
        assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds 50/50 while sampling"
        assert_share_matches(stats.requests, 0.5)
        gate.approved.set()
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=120)

    assert final["phase"] == "Succeeded", final
    assert recorder.gaps == 0 and recorder.errors == []
    states = [c.body for c in recorder.of("HTTPRoute", NAME)]
    for state in states:
        _assert_carries_the_options(state)
    splits = [_split(state)[f"{NAME}-canary"] for state in states]
    assert [w for i, w in enumerate(splits) if i == 0 or splits[i - 1] != w] == [0, 50, 0], splits
    assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
    assert 50 in watcher.weights()
    # Our own writes read back as ours: nothing was "restored" along the way.
    assert [e for e in kube.events(NAME) if e.get("reason") == "RouteRestored"] == []


# --- A/B testing through the mesh (the route attached to the apex Service) -------------------

AB_HEADER = {"x-canary": "insider"}
PROBES = 40


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


def _backends(env: Environment, kube: Kube, headers: dict[str, str]) -> Counter[str | None]:
    """Where the data plane sent ``PROBES`` requests with ``headers``, by backend Service."""
    return Counter(env.mesh.client.send(kube.namespace, NAME, headers=headers).backend for _ in range(PROBES))


def _install_gated_blue_green(kube: Kube, gate: Gate, **analysis: Any) -> None:
    """A blue/green Canary on the gatewayapi router, held in WaitingPromotion by ``gate``, with
    ``analysis`` (A/B match or mirroring) added, and its Deployment."""
    body = app.canary(NAME, kube.namespace, provider="gatewayapi", metrics=[], webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}])
    spec_analysis = body["spec"]["analysis"]
    del spec_analysis["stepWeight"], spec_analysis["maxWeight"]
    spec_analysis.update(iterations=2, **analysis)
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    kube.create(body)


def test_ab_by_header_sends_only_matching_requests_to_the_canary(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    env.use_flavour("gatewayapi")
    start_controller()
    _install_gated_blue_green(kube, gate, match=[{"headers": {"x-canary": {"exact": "insider"}}}])
    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    assert _backends(env, kube, AB_HEADER) == Counter({f"{NAME}-primary": PROBES})

    ship(kube, NAME, "2")
    kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
    # The data plane follows the route through its watch; wait until it serves the A/B rule.
    wait_for(lambda: env.mesh.client.send(kube.namespace, NAME, headers=AB_HEADER).backend,
             lambda backend: backend == f"{NAME}-canary", timeout=30, what="the A/B rule in the data plane")
    matched, unmatched = _backends(env, kube, AB_HEADER), _backends(env, kube, {"x-canary": "outsider"})
    assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the A/B stage while sampling"
    assert matched == Counter({f"{NAME}-canary": PROBES}), matched
    assert unmatched == Counter({f"{NAME}-primary": PROBES}), unmatched

    gate.approved.set()
    final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment(f"{NAME}-primary")) == "2"
    # Released: the A/B rule is gone, and matching requests are served by the promoted primary.
    wait_for(lambda: len(_route(kube)["spec"]["rules"]), lambda n: n == 1, timeout=30, what="the A/B rule removed")
    wait_for(lambda: _backends(env, kube, AB_HEADER), lambda c: c == Counter({f"{NAME}-primary": PROBES}),
             timeout=30, what="matching requests back on the primary")


def test_session_affinity_sends_requests_with_the_runs_cookie_to_the_canary(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    """The routing half of Flagger's session affinity: a client holding the run's cookie stays on
    the canary while the split would send most requests elsewhere. (The harness's answers do not
    carry response headers, so the Set-Cookie half is checked on the stored route.)"""
    env.use_flavour("gatewayapi")
    start_controller()
    body = app.canary(NAME, kube.namespace, provider="gatewayapi", metrics=[], step_weight=10, max_weight=10,
                      webhooks=[{"name": "release-approval", "type": "confirm-promotion", "url": gate.url,
                                 "timeout": "2s"}])
    body["spec"]["analysis"]["sessionAffinity"] = {"cookieName": "canary-session", "maxAge": 600}
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1"), replicas=1))
    kube.create(body)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)

    revision = ship(kube, NAME, "2")["lastAppliedSpec"]
    kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
    sticky = {"cookie": f"theme=dark; canary-session={revision}"}
    wait_for(lambda: env.mesh.client.send(kube.namespace, NAME, headers=sticky).backend,
             lambda backend: backend == f"{NAME}-canary", timeout=30, what="the cookie rule in the data plane")
    with_cookie = _backends(env, kube, sticky)
    stale_cookie = _backends(env, kube, {"cookie": "canary-session=0000000000000000"})
    assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the 90/10 split while sampling"
    assert with_cookie == Counter({f"{NAME}-canary": PROBES}), with_cookie
    # A cookie of another run is no ticket: those requests follow the 90/10 split.
    assert stale_cookie[f"{NAME}-primary"] > stale_cookie[f"{NAME}-canary"], stale_cookie
    split = _route(kube)["spec"]["rules"][-1]["backendRefs"]
    assert [ref.get("filters") for ref in split] == [None, [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
        "add": [{"name": "Set-Cookie", "value": f"canary-session={revision}; Max-Age=600; Path=/"}]}}]]

    gate.approved.set()
    final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    wait_for(lambda: _backends(env, kube, sticky), lambda c: c == Counter({f"{NAME}-primary": PROBES}),
             timeout=30, what="the run's cookie no longer pinning anyone once promoted")


def _mirrors(env: Environment, kube: Kube) -> list[tuple[str, float]]:
    """(service, percent) of every RequestMirror the data plane applies on the apex's route."""
    return [(m.service, m.percent) for r in env.mesh.client.routes()
            if (r.namespace, r.service, r.host) == (kube.namespace, NAME, "")
            for rule in r.rules for m in rule.mirrors]


def test_mirroring_copies_the_mirror_weight_of_requests_to_the_canary_while_the_primary_answers(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    env.use_flavour("gatewayapi")
    start_controller()
    _install_gated_blue_green(kube, gate, mirror=True, mirrorWeight=50)
    kube.wait_for_phase(NAME, "Initialized", timeout=90)

    ship(kube, NAME, "2")
    kube.wait_for_phase(NAME, "WaitingPromotion", timeout=90)
    wait_for(lambda: _mirrors(env, kube), lambda m: m == [(f"{NAME}-canary", 50.0)], timeout=30,
             what="the data plane mirroring half the requests to the canary")
    env.mesh.client.reset_stats(kube.namespace, NAME)
    env.mesh.client.set_load(kube.namespace, NAME, 40)
    stats = wait_for(lambda: env.mesh.client.stats(kube.namespace, NAME), lambda s: s.total >= 200, timeout=60,
                     what="200 requests through the mirroring route")
    env.mesh.client.set_load(kube.namespace, NAME, 0)
    assert kube.status(NAME)["phase"] == "WaitingPromotion", "the gate holds the mirror stage while sampling"

    # Every answer came from the primary; the canary saw copies only, about half of the requests.
    assert set(stats.requests) == {f"{NAME}-primary"}, stats.requests
    copies = stats.mirrored.get(f"{NAME}-canary", 0)
    assert_share_matches({f"{NAME}-canary": copies, f"{NAME}-primary": stats.total - copies}, 0.5)

    gate.approved.set()
    final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    wait_for(lambda: _mirrors(env, kube), lambda m: m == [], timeout=30, what="mirroring stopped once promoted")
