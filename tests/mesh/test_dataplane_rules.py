"""HTTPRoute rules in the running data plane: A/B by header, cookie and query parameter, mirrors,
header modifiers, URL rewrites, timeouts and north-south routes, over real loopback HTTP, driven
by the load generator and read from the stats and the control API."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from e2e.mesh.client import MeshClient
from e2e.mesh.dataplane import DataPlane
from e2e.mesh.objects import parse_http_route
from e2e.mesh.routing import Observed
from e2e.mesh.stats import UNROUTED
from tests.mesh.factories import http_route_obj, pod, podinfo_world
from tests.mesh.test_dataplane import exposition, until

NS = "test"
INSIDER = {"name": "x-canary", "value": "insider"}


@pytest.fixture
async def plane() -> AsyncIterator[DataPlane]:
    dp = DataPlane(seed=20251206)
    await dp.start()
    try:
        yield dp
    finally:
        await dp.close()


def to(*weighted: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"name": service, "port": 9898, "weight": weight} for service, weight in weighted]


def ab_rules(match: dict[str, Any]) -> list[dict[str, Any]]:
    """What Flagger writes for A/B testing: matching requests to the canary, the rest to the
    primary (with the canary's backendRef at weight 0)."""
    return [
        {"matches": [match], "backendRefs": to(("podinfo-primary", 0), ("podinfo-canary", 100))},
        {"backendRefs": to(("podinfo-primary", 100), ("podinfo-canary", 0))},
    ]


def world(rules: list[dict[str, Any]], *, gateway_hosts: list[str] | None = None, canary_annotations: dict[str, str] | None = None) -> Observed:
    services, pods = podinfo_world(NS)
    if canary_annotations:
        pods = [p for p in pods if p.deployment != "podinfo"] + [
            pod(NS, "podinfo", s, {"app": "podinfo"}, annotations=canary_annotations) for s in ("ccccc", "ddddd")
        ]
    body = http_route_obj(NS, "podinfo", [], rules=rules)
    if gateway_hosts is not None:
        body["spec"]["parentRefs"] = [{"name": "edge", "namespace": "infra"}]
        body["spec"]["hostnames"] = gateway_hosts
    return Observed(services=tuple(services), pods=tuple(pods), http_routes=(parse_http_route(body, "v1"),))


def snapshot(dp: DataPlane, service: str = "podinfo", namespace: str = NS) -> dict[str, Any]:
    return dp.stats.snapshot(namespace, service)


async def drive_streams(dp: DataPlane, count: int, streams: dict[str, dict[str, Any]], *, service: str = "podinfo", namespace: str = NS) -> None:
    """Run the named streams concurrently until each has ``count`` answered requests in the
    stats, stop them, and wait until nothing is in flight."""
    assert dp.loadgen is not None
    started = [dp.loadgen.set(namespace, service, 200, name=name, **settings) for name, settings in streams.items()]

    def answered(name: str) -> int:
        return sum(snapshot(dp, service, namespace)["streams"].get(name, {}).values())

    await until(lambda: all(answered(name) >= count for name in streams))
    for name, settings in streams.items():
        dp.loadgen.set(namespace, service, 0, name=name, host=settings.get("host"))
    await until(lambda: all(s is not None and s.in_flight == 0 for s in started))


async def get(dp: DataPlane, host: str, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{dp.proxy_port}{path}", headers={"Host": host, **(headers or {})}) as answer:
            text = await answer.text()
            body = json.loads(text) if answer.content_type == "application/json" else {"text": text}
            return answer.status, body, {k.lower(): v for k, v in answer.headers.items()}


# --- A/B ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "insider"),
    [
        ({"headers": [INSIDER]}, {"headers": {"X-Canary": "insider"}}),
        (
            {"headers": [{"name": "cookie", "type": "RegularExpression", "value": r"^(.*?;\s*)?canary=always(;.*)?$"}]},
            {"cookies": {"session": "42", "canary": "always"}},
        ),
        ({"queryParams": [{"name": "beta", "value": "yes"}]}, {"query": {"beta": "yes"}}),
    ],
    ids=["header", "cookie", "query"],
)
async def test_ab_routes_only_matching_requests_to_the_canary(plane: DataPlane, match: dict[str, Any], insider: dict[str, Any]) -> None:
    await plane.apply(world(ab_rules(match)))
    await drive_streams(plane, 150, {"insiders": insider, "others": {}})

    snap = snapshot(plane)
    insiders, others = snap["streams"]["insiders"], snap["streams"]["others"]
    assert set(insiders) == {"podinfo-canary"} and insiders["podinfo-canary"] >= 150
    assert set(others) == {"podinfo-primary"} and others["podinfo-primary"] >= 150
    # Per rule: the match rule (0) routed exactly the insiders, the default rule (1) the others.
    by_rule = {c["rule"]: c for c in snap["configs"]}
    assert by_rule[0]["requests"] == {"podinfo-canary": insiders["podinfo-canary"]}
    assert by_rule[1]["requests"] == {"podinfo-primary": others["podinfo-primary"]}


async def test_each_stream_counts_the_backends_that_answered(plane: DataPlane) -> None:
    await plane.apply(world(ab_rules({"headers": [INSIDER]})))
    assert plane.loadgen is not None
    insiders = plane.loadgen.set(NS, "podinfo", 200, name="insiders", headers={"x-canary": "insider"})
    others = plane.loadgen.set(NS, "podinfo", 200, name="others")
    assert insiders is not None and others is not None
    await until(lambda: insiders.completed >= 50 and others.completed >= 50)
    plane.loadgen.set(NS, "podinfo", 0, name="insiders")
    plane.loadgen.set(NS, "podinfo", 0, name="others")
    await until(lambda: insiders.in_flight == 0 and others.in_flight == 0)
    assert insiders.backends == {"podinfo-canary": insiders.completed}
    assert others.backends == {"podinfo-primary": others.completed}


# --- mirrors ------------------------------------------------------------------------------------


def mirrored_rules(**share: Any) -> list[dict[str, Any]]:
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "podinfo-canary", "port": 9898}, **share}}
    return [{"backendRefs": to(("podinfo-primary", 100), ("podinfo-canary", 0)), "filters": [mirror]}]


async def test_mirror_copies_every_request_and_counts_copies_apart(plane: DataPlane) -> None:
    await plane.apply(world(mirrored_rules(), canary_annotations={"sim.canary.dev/error-rate": "1"}))
    await drive_streams(plane, 200, {"clients": {}})
    # Copies are answered after the clients' requests: wait for every one to be counted.
    await until(lambda: sum(snapshot(plane)["mirrored"].values()) == snapshot(plane)["total"])

    (config,) = snapshot(plane)["configs"]
    # Clients got their answers from the primary only, although every copy failed on the canary.
    assert config["requests"] == {"podinfo-primary": config["total"]}
    assert config["statuses"] == {"200": config["total"]}
    assert config["mirrored"] == {"podinfo-canary": config["total"]}
    assert config["mirrorStatuses"] == {"podinfo-canary": {"500": config["total"]}}
    # The canary's own proxy saw the copies: that is what a mirrored canary's analysis measures.
    inbound = [
        (labels, value)
        for labels, value in exposition(plane)["response_total"]
        if labels["direction"] == "inbound" and labels["deployment"] == "podinfo"
    ]
    assert sum(v for _, v in inbound) == config["total"]
    assert {labels["classification"] for labels, _ in inbound} == {"failure"}


@pytest.mark.parametrize("share", [{"percent": 30}, {"fraction": {"numerator": 3, "denominator": 10}}])
async def test_mirror_share(plane: DataPlane, share: dict[str, Any]) -> None:
    await plane.apply(world(mirrored_rules(**share)))
    await drive_streams(plane, 1000, {"clients": {}})
    await until(lambda: plane.proxy.mirrors_in_flight == 0)
    (config,) = snapshot(plane)["configs"]
    total, copies = config["total"], config["mirrored"].get("podinfo-canary", 0)
    # Five standard deviations of a binomial share.
    assert abs(copies / total - 0.3) <= 5 * (0.3 * 0.7 / total) ** 0.5, (copies, total)


# --- filters and timeouts -----------------------------------------------------------------------


async def test_header_modifiers_on_the_rule_and_on_a_backend(plane: DataPlane) -> None:
    rules = [
        {
            "backendRefs": [
                {
                    "name": "podinfo-canary",
                    "port": 9898,
                    "filters": [
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "flagger-cookie=abc; Max-Age=60"}]},
                        }
                    ],
                }
            ],
            "filters": [
                {
                    "type": "RequestHeaderModifier",
                    "requestHeaderModifier": {
                        "set": [{"name": "x-env", "value": "canary"}],
                        "add": [{"name": "x-list", "value": "b"}],
                        "remove": ["x-secret"],
                    },
                },
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-served-by", "value": "mesh"}]}},
            ],
        }
    ]
    await plane.apply(world(rules))
    status, body, headers = await get(plane, "podinfo.test", headers={"x-env": "prod", "x-list": "a", "x-secret": "s"})
    assert status == 200
    received = {k.lower(): v for k, v in body["headers"].items()}
    assert received["x-env"] == "canary" and received["x-list"] == "a,b" and "x-secret" not in received
    assert headers["set-cookie"] == "flagger-cookie=abc; Max-Age=60"
    assert headers["x-served-by"] == "mesh"


async def test_url_rewrite_of_the_matched_prefix_and_the_host(plane: DataPlane) -> None:
    rewrite = {"hostname": "internal.example", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}
    rules = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "backendRefs": to(("podinfo-canary", 1)),
            "filters": [{"type": "URLRewrite", "urlRewrite": rewrite}],
        },
        {"backendRefs": to(("podinfo-primary", 1))},
    ]
    await plane.apply(world(rules))
    status, body, _ = await get(plane, "podinfo.test", "/api/users?id=7")
    assert status == 200
    assert (body["path"], body["query"], body["host"]) == ("/v2/users", "id=7", "internal.example")
    status, body, _ = await get(plane, "podinfo.test", "/other")
    assert (body["deployment"], body["path"]) == ("podinfo-primary", "/other")


async def test_a_request_over_the_rule_timeout_gets_504(plane: DataPlane) -> None:
    # The Pod waits 30 s; the route allows 100 ms. The proxy's deadline starts before the Pod's
    # wait, so it always expires first, however busy the machine.
    rules = [{"backendRefs": to(("podinfo-canary", 1)), "timeouts": {"request": "100ms"}}]
    await plane.apply(world(rules, canary_annotations={"sim.canary.dev/latency-ms": "30000"}))
    status, body, headers = await get(plane, "podinfo.test")
    assert status == 504 and "timed out" in body["text"] and "l5d-proxy-error" in headers
    (config,) = snapshot(plane)["configs"]
    assert config["backendStatuses"] == {"podinfo-canary": {"504": 1}}


# --- north-south --------------------------------------------------------------------------------


async def test_gateway_route_serves_its_host_with_ab(plane: DataPlane) -> None:
    await plane.apply(world(ab_rules({"headers": [INSIDER]}), gateway_hosts=["app.example.com"]))
    host = "app.example.com"
    await drive_streams(
        plane,
        100,
        {"insiders": {"host": host, "headers": {"x-canary": "insider"}}, "others": {"host": host}},
        service=host,  # north-south stats are kept under namespace "" and the host
        namespace="",
    )
    snap = plane.stats.snapshot("", host)
    assert set(snap["streams"]["insiders"]) == {"podinfo-canary"}
    assert set(snap["streams"]["others"]) == {"podinfo-primary"}
    # North-south traffic comes from outside the mesh: no outbound (client-side) series.
    assert not [l for l, _ in exposition(plane)["response_total"] if l["direction"] == "outbound"]
    # The Service's own address is not routed by the Gateway route.
    status, body, _ = await get(plane, "podinfo.test", headers={"x-canary": "insider"})
    assert status == 200 and body["deployment"] == "podinfo-primary"
    status, _, _ = await get(plane, "other.example.com")
    assert status == 404


async def test_the_control_api_drives_header_and_host_load(plane: DataPlane) -> None:
    await plane.apply(world(ab_rules({"headers": [INSIDER]}), gateway_hosts=["app.example.com"]))
    client = MeshClient(f"http://127.0.0.1:{plane.control_port}", proxy_url=f"http://127.0.0.1:{plane.proxy_port}")
    call = asyncio.to_thread
    stream = await call(
        functools.partial(client.set_host_load, "app.example.com", 200, namespace=NS, name="insiders", headers={"x-canary": "insider"})
    )
    assert stream is not None and (stream.name, stream.host, stream.headers) == ("insiders", "app.example.com", {"x-canary": "insider"})
    await call(functools.partial(client.set_host_load, "app.example.com", 200, namespace=NS, name="others"))

    async def counts() -> dict[str, dict[str, int]]:
        stats = await call(client.host_stats, "app.example.com")
        return {name: dict(stats.stream(name)) for name in ("insiders", "others")}

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        seen = await counts()
        if all(sum(c.values()) >= 50 for c in seen.values()):
            break
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.05)
    assert plane.loadgen is not None
    live = plane.loadgen.streams()
    await call(client.stop_all_load, NS)  # host streams marked with the namespace stop with it
    assert await call(client.loads) == []
    assert set(seen["insiders"]) == {"podinfo-canary"} and set(seen["others"]) == {"podinfo-primary"}
    (route,) = await call(client.host_routes)
    assert route.host == "app.example.com" and route.source.kind == "HTTPRoute"
    assert route.rules[0].matches[0]["headers"] == [{"type": "Exact", "name": "x-canary", "value": "insider"}]
    # Requests sent before the stop may still be on their way: one routed after the reset would
    # be counted afresh.
    await until(lambda: all(s.in_flight == 0 for s in live))
    await call(functools.partial(client.reset_stats, host="app.example.com"))
    assert (await call(client.host_stats, "app.example.com")).total == 0


async def test_a_zero_weight_rule_counts_streams_as_unrouted(plane: DataPlane) -> None:
    await plane.apply(world([{"backendRefs": to(("podinfo-primary", 0))}]))
    await drive_streams(plane, 20, {"clients": {}})
    assert set(snapshot(plane)["streams"]["clients"]) == {UNROUTED}


# --- session affinity ---------------------------------------------------------------------------


def affinity_rules(cookie_match: str) -> list[dict[str, Any]]:
    """Flagger's session affinity with the Gateway API: the canary's backendRef sets a cookie, and
    a rule sends requests whose ``Cookie`` header matches ``cookie_match`` to the canary."""
    canary_ref = {
        "name": "podinfo-canary",
        "port": 9898,
        "weight": 10,
        "filters": [
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "flagger-cookie=sticky; Max-Age=3600"}]},
            }
        ],
    }
    cookie_rule = {"name": "cookie", "type": "RegularExpression", "value": cookie_match}
    return [
        {"matches": [{"headers": [cookie_rule]}], "backendRefs": to(("podinfo-canary", 100))},
        {"backendRefs": [*to(("podinfo-primary", 90)), canary_ref]},
    ]


BACK_TO_PRIMARY = "podinfo-canary->podinfo-primary"
ONTO_CANARY = "podinfo-primary->podinfo-canary"


async def test_session_affinity_keeps_users_on_the_canary_once_there(plane: DataPlane) -> None:
    await plane.apply(world(affinity_rules(r".*flagger-cookie=sticky.*")))
    assert plane.loadgen is not None
    stream = plane.loadgen.set(NS, "podinfo", 300, name="browsers", users=20)
    assert stream is not None
    await until(lambda: stream.completed >= 800 and stream.switches[ONTO_CANARY] >= 1)
    plane.loadgen.set(NS, "podinfo", 0, name="browsers")
    await until(lambda: stream.in_flight == 0)

    # Users move to the canary (10% of their cookie-less requests) and never come back: a user
    # sends its next request only once answered, so every request after a canary answer carries
    # the cookie, whatever the load on the machine (see e2e.mesh.users).
    assert stream.switches.get(BACK_TO_PRIMARY, 0) == 0, stream.switches
    by_rule = {c["rule"]: c for c in snapshot(plane)["configs"]}
    assert set(by_rule[0]["requests"]) == {"podinfo-canary"}


async def test_users_come_back_to_the_primary_when_the_rule_misses_the_cookie(plane: DataPlane) -> None:
    # The counterpart of the test above, so that its "no switch back" cannot hold by itself: the
    # same users, with a rule that does not match the cookie the canary sets, do switch back.
    await plane.apply(world(affinity_rules(r".*other-cookie=sticky.*")))
    assert plane.loadgen is not None
    stream = plane.loadgen.set(NS, "podinfo", 300, name="browsers", users=20)
    assert stream is not None
    await until(lambda: stream.switches[BACK_TO_PRIMARY] >= 1)
    plane.loadgen.set(NS, "podinfo", 0, name="browsers")
    await until(lambda: stream.in_flight == 0)
    assert 0 not in {c["rule"] for c in snapshot(plane)["configs"]}


async def test_without_users_no_cookie_is_kept(plane: DataPlane) -> None:
    rules = [
        {"matches": [{"headers": [{"name": "cookie", "type": "RegularExpression", "value": ".*c=1.*"}]}], "backendRefs": to(("podinfo-canary", 1))},
        {
            "backendRefs": to(("podinfo-primary", 1)),
            "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "c=1"}]}}],
        },
    ]
    await plane.apply(world(rules))
    await drive_streams(plane, 50, {"plain": {}})
    assert set(snapshot(plane)["streams"]["plain"]) == {"podinfo-primary"}
