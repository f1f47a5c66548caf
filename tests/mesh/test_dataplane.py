"""The data plane in process, with no API server: routing tables come from observed objects
handed to ``DataPlane.apply``, traffic from the load generator, over real loopback HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.mesh.client import MeshClient, MeshClientError, same_shares
from e2e.mesh.dataplane import DataPlane
from e2e.mesh.objects import Pod
from e2e.mesh.routing import Observed
from tests.mesh.factories import pod, podinfo_world, split

NS = "test"


def world(weights: tuple[object, object] | None = (80, 20), canary_annotations: dict[str, str] | None = None) -> Observed:
    services, pods = podinfo_world(NS)
    if canary_annotations:
        pods = [p for p in pods if p.deployment != "podinfo"] + [
            pod(NS, "podinfo", s, {"app": "podinfo"}, annotations=canary_annotations) for s in ("ccccc", "ddddd")
        ]
    splits = ()
    if weights is not None:
        splits = (split(NS, "podinfo", [("podinfo-primary", weights[0]), ("podinfo-canary", weights[1])]),)
    return Observed(services=tuple(services), pods=tuple(pods), splits=splits)


@pytest.fixture
async def plane() -> AsyncIterator[DataPlane]:
    dp = DataPlane(seed=20250101)
    await dp.start()
    try:
        yield dp
    finally:
        await dp.close()


# Generous: a condition that holds returns at once, and a busy machine can be many times slower.
async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def until_refused(port: int, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionError:  # refused, or reset by a listener that is closing
            return
        writer.close()
        await writer.wait_closed()
        assert asyncio.get_running_loop().time() < deadline, f"port {port} still accepts connections"
        await asyncio.sleep(0.02)


async def drive(dp: DataPlane, rps: float, count: int) -> None:
    """Send at least ``count`` requests to the apex at ``rps`` with the load generator, stop it, and
    return once every request it sent has been answered (and so counted), however slow the machine."""
    assert dp.loadgen is not None
    start = dp.stats.snapshot(NS, "podinfo")["total"]
    stream = dp.loadgen.set(NS, "podinfo", rps)
    assert stream is not None
    await until(lambda: dp.stats.snapshot(NS, "podinfo")["total"] >= start + count)
    dp.loadgen.set(NS, "podinfo", 0)
    # A stopped stream leaves the generator's list, so wait on the stream object itself: a request
    # still in flight would otherwise be counted later, in whatever configuration comes next.
    await until(lambda: stream.in_flight == 0)


def exposition(dp: DataPlane) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(dp.metrics.exposition().decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


async def test_80_20_split_then_50_50(plane: DataPlane) -> None:
    await plane.apply(world((80, 20), canary_annotations={"sim.canary.dev/error-rate": "0.2"}))
    await drive(plane, rps=400, count=600)
    await plane.apply(world((50, 50), canary_annotations={"sim.canary.dev/error-rate": "0.2"}))
    await drive(plane, rps=400, count=400)

    snap = plane.stats.snapshot(NS, "podinfo")
    configs = snap["configs"]
    assert [c["weights"] for c in configs] == [
        {"podinfo-primary": 80, "podinfo-canary": 20},
        {"podinfo-primary": 50, "podinfo-canary": 50},
    ]
    assert configs[0]["sources"][0]["kind"] == "TrafficSplit"
    assert configs[1]["since"] > configs[0]["since"]
    for config, expected in zip(configs, (0.2, 0.5), strict=True):
        routed = sum(config["requests"].values())
        share = config["requests"]["podinfo-canary"] / routed
        # Five standard deviations of a binomial share over the requests of this configuration.
        assert abs(share - expected) <= 5 * (expected * (1 - expected) / routed) ** 0.5, (config, share)
        # Failures come only from the canary (error-rate 0.2).
        assert "500" not in config["backendStatuses"]["podinfo-primary"]
        canary = config["backendStatuses"]["podinfo-canary"]
        assert 0 < canary.get("500", 0) < canary["200"]

    # The metrics count exactly what the stats count, per deployment and outcome.
    series = exposition(plane)
    inbound: Counter[tuple[str, str]] = Counter()
    for labels, value in series["response_total"]:
        if labels["direction"] == "inbound":
            assert labels["namespace"] == NS and labels["tls"] == "true" and labels["pod"]
            inbound[(labels["deployment"], labels["classification"])] += int(value)
    stats_by: Counter[tuple[str, str]] = Counter()
    for config in configs:
        for backend, statuses in config["backendStatuses"].items():
            deployment = {"podinfo-primary": "podinfo-primary", "podinfo-canary": "podinfo"}[backend]
            for code, n in statuses.items():
                stats_by[(deployment, "failure" if code.startswith("5") else "success")] += n
    assert inbound == stats_by
    count = sum(v for l, v in series["response_latency_ms_count"] if l["direction"] == "inbound")
    assert count == snap["total"]
    outbound = sum(v for l, v in series["response_total"] if l["direction"] == "outbound")
    assert outbound == snap["total"]


async def test_weight_change_applies_at_once(plane: DataPlane) -> None:
    await plane.apply(world((100, 0)))
    await drive(plane, rps=300, count=150)
    await plane.apply(world((0, 100)))
    await drive(plane, rps=300, count=150)
    first, second = plane.stats.snapshot(NS, "podinfo")["configs"]
    assert first["requests"] == {"podinfo-primary": first["total"]}
    assert second["requests"] == {"podinfo-canary": second["total"]}


async def test_latency_annotation_shows_in_the_histogram(plane: DataPlane) -> None:
    await plane.apply(world((0, 1), canary_annotations={"sim.canary.dev/latency-ms": "60"}))
    await drive(plane, rps=200, count=40)
    series = exposition(plane)
    canary = [(l, v) for l, v in series["response_latency_ms_bucket"] if l.get("deployment") == "podinfo"]
    below = sum(v for l, v in canary if l["le"] == "50")
    answered = sum(v for l, v in canary if l["le"] == "+Inf")
    # 60 ms is a floor, not a ceiling: a busy machine adds any amount on top, so only "nothing
    # faster than the annotation" is a fact the test can rely on (not "everything under 100 ms").
    assert below == 0 and answered >= 40
    assert answered == plane.stats.snapshot(NS, "podinfo")["total"]


async def test_proxy_answers_by_itself_when_it_cannot_forward(plane: DataPlane) -> None:
    services, pods = podinfo_world(NS)
    no_canary_pods = [p for p in pods if p.deployment != "podinfo"]
    await plane.apply(
        Observed(
            services=tuple(services),
            pods=tuple(no_canary_pods),
            splits=(split(NS, "podinfo", [("podinfo-primary", 0), ("podinfo-canary", 1)]),),
        )
    )
    url = f"http://127.0.0.1:{plane.proxy_port}"
    async with aiohttp.ClientSession() as session:

        async def get(host: str, path: str = "/") -> tuple[int, str, dict[str, str]]:
            async with session.get(url + path, headers={"Host": host}) as answer:
                return answer.status, await answer.text(), dict(answer.headers)

        status, text, headers = await get("podinfo.test")
        assert status == 503 and "no ready pods" in text and "l5d-proxy-error" in {k.lower() for k in headers}
        status, text, _ = await get("nothing.test")
        assert status == 404 and "no Service nothing in namespace test" in text
        status, text, _ = await get("localhost:8080")
        assert status == 404 and "not a Service address" in text
        for host in ("podinfo-primary.test", "podinfo-primary.test.svc", "podinfo-primary.test.svc.cluster.local:9898"):
            status, text, headers = await get(host, "/some/path?q=1")
            assert status == 200, (host, text)
            assert headers["x-mesh-backend"] == "podinfo-primary"
        status, text, _ = await get("podinfo-primary.test", "/echo")
        body = __import__("json").loads(text)
        assert body["deployment"] == "podinfo-primary" and body["path"] == "/echo"

        await plane.apply(
            Observed(
                services=tuple(services),
                pods=tuple(pods),
                splits=(split(NS, "podinfo", [("podinfo-primary", "0"), ("podinfo-canary", "0m")], version="v1alpha1"),),
            )
        )
        status, text, _ = await get("podinfo.test")
        assert status == 503 and "sum to 0" in text
    assert plane.stats.snapshot(NS, "podinfo")["configs"][-1]["unrouted"] == 1


async def test_pods_start_and_stop_with_readiness(plane: DataPlane) -> None:
    services, pods = podinfo_world(NS)
    await plane.apply(Observed(services=tuple(services), pods=tuple(pods)))
    assert len(plane.backends.servers()) == 4
    ports = {s.name: s.port for s in plane.backends.servers()}
    unready: list[Pod] = [pod(NS, "podinfo", "ccccc", {"app": "podinfo"}, ready=False)]
    remaining = [p for p in pods if not p.meta.name.endswith("ccccc")] + unready
    await plane.apply(Observed(services=tuple(services), pods=tuple(remaining)))
    assert sorted(s.name for s in plane.backends.servers()) == sorted(p.meta.name for p in pods if p.ready and not p.meta.name.endswith("ccccc"))
    # The server stops in the background (a terminating Pod's grace): wait until its port refuses.
    await until_refused(ports["podinfo-5d8f7c9b4-ccccc"])
    # Only the remaining canary Pod gets the canary's traffic.
    route = plane.table().route(NS, "podinfo-canary")
    assert route is not None and [e.name for e in route.rules[0].backends[0].endpoints] == ["podinfo-5d8f7c9b4-ddddd"]


async def test_behaviour_follows_annotation_changes(plane: DataPlane) -> None:
    await plane.apply(world((0, 1)))
    await plane.apply(world((0, 1), canary_annotations={"sim.canary.dev/error-rate": "1", "sim.canary.dev/status": "503"}))
    await drive(plane, rps=200, count=20)
    config = plane.stats.snapshot(NS, "podinfo")["configs"][-1]
    assert config["statuses"] == {"503": config["total"]}


async def test_control_api_and_client(plane: DataPlane) -> None:
    await plane.apply(world((90, 10)))
    client = MeshClient(f"http://127.0.0.1:{plane.control_port}", proxy_url=f"http://127.0.0.1:{plane.proxy_port}")

    assert (await asyncio.to_thread(client.healthz))["ok"] is True
    route = await asyncio.to_thread(client.wait_for_route, NS, "podinfo", {"podinfo-primary": 0.9, "podinfo-canary": 0.1}, 2.0)
    assert route.source.kind == "TrafficSplit" and route.percent == {"podinfo-primary": 90.0, "podinfo-canary": 10.0}
    assert route.rules[0].backends[1].endpoints == ("podinfo-5d8f7c9b4-ccccc", "podinfo-5d8f7c9b4-ddddd")

    answer = await asyncio.to_thread(client.send, NS, "podinfo-canary", "/hello")
    assert answer.status == 200 and answer.backend == "podinfo-canary" and answer.json()["deployment"] == "podinfo"

    stream = await asyncio.to_thread(client.set_load, NS, "podinfo", 250)
    assert stream is not None and stream.rps == 250
    await until(lambda: plane.stats.snapshot(NS, "podinfo")["total"] >= 100)
    loads = await asyncio.to_thread(client.loads)
    assert [(s.service, s.rps) for s in loads] == [("podinfo", 250)]
    assert plane.loadgen is not None
    (live,) = plane.loadgen.streams()
    assert await asyncio.to_thread(client.set_load, NS, "podinfo", 0) is None
    assert await asyncio.to_thread(client.loads) == []
    # Stopping sends nothing new, but requests already sent are still on their way: one routed
    # after the reset below would be counted afresh.
    await until(lambda: live.in_flight == 0)

    stats = await asyncio.to_thread(client.stats, NS, "podinfo")
    assert stats.total >= 100 and len(stats.configs) == 1
    (config,) = stats.configs_with({"podinfo-primary": 90, "podinfo-canary": 10})
    assert config.requests["podinfo-primary"] > config.requests.get("podinfo-canary", 0)
    assert config.failures() == 0

    pods = await asyncio.to_thread(client.pods)
    assert {p.deployment for p in pods} == {"podinfo", "podinfo-primary"} and all(p.port for p in pods)

    await asyncio.to_thread(client.reset_stats)
    assert (await asyncio.to_thread(client.stats, NS, "podinfo")).total == 0

    with pytest.raises(MeshClientError, match="rps"):
        await asyncio.to_thread(client.set_load, NS, "podinfo", -1)
    with pytest.raises(MeshClientError, match="timed out"):
        await asyncio.to_thread(client.wait_for_route, NS, "podinfo", {"podinfo-primary": 1}, 0.3)
    assert same_shares({"a": 80, "b": 20}, {"a": 0.8, "b": 0.2})

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{plane.metrics_port}/metrics") as answer:
            assert answer.status == 200 and "text/plain" in answer.headers["Content-Type"]
        async with session.put(f"http://127.0.0.1:{plane.control_port}/load", data="not json") as answer:
            assert answer.status == 400 and "error" in await answer.json()
        async with session.get(f"http://127.0.0.1:{plane.control_port}/stats?namespace=test") as answer:
            assert answer.status == 400
        async with session.get(f"http://127.0.0.1:{plane.control_port}/nowhere") as answer:
            assert answer.status == 404 and "error" in await answer.json()
