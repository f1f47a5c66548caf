"""The cache never goes back behind a write of the controller's own, however late the watch is."""

from __future__ import annotations

from typing import Any

from canary.kube.cache import ClusterCache, Kind, ObjectKey
from tests.kube.harness import canary_body, cluster_with_app, release

KEY = ObjectKey(Kind.SERVICE, "test", "podinfo")


def service(version: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": version},
            "spec": {"selector": {"app": "podinfo"}, "ports": [{"port": port}]}}


def port(cache: ClusterCache) -> int:
    body = cache.get(KEY)
    assert body is not None
    return int(body["spec"]["ports"][0]["port"])


def test_a_lagging_watch_does_not_undo_our_own_writes() -> None:
    cache = ClusterCache()
    cache.put(KEY, service("10", 80))
    assert cache.refresh(KEY, service("11", 81), "10")  # our write on 10
    assert cache.refresh(KEY, service("12", 82), "11")  # and another, before the watch saw 11
    cache.put(KEY, service("10", 80))  # the watch, late
    cache.put(KEY, service("11", 81))
    assert (cache.version(KEY), port(cache)) == ("12", 82)
    cache.put(KEY, service("12", 82))  # caught up
    cache.put(KEY, service("13", 83))  # someone else's change after ours is taken
    assert (cache.version(KEY), port(cache)) == ("13", 83)


def test_once_the_watch_caught_up_every_version_it_sends_is_taken() -> None:
    cache = ClusterCache()
    cache.put(KEY, service("10", 80))
    cache.refresh(KEY, service("11", 81), "10")
    cache.put(KEY, service("14", 84))  # the watch jumped past our write
    cache.put(KEY, service("10", 80))  # cannot happen in one watch stream, but a relist is taken as is
    assert port(cache) == 80


def test_a_refresh_refused_by_a_newer_watch_copy_changes_nothing() -> None:
    cache = ClusterCache()
    cache.put(KEY, service("10", 80))
    cache.put(KEY, service("11", 81))
    assert not cache.refresh(KEY, service("12", 82), "10")
    assert port(cache) == 81


async def test_behind_a_lagging_watch_each_pass_builds_on_the_last_and_nothing_is_refused() -> None:
    """Under load the watch can trail the controller's own writes by more than a pass. Each pass
    must still see the route and status the previous one wrote: deciding from older copies would
    repeat writes on stale versions (409s) and read the route a step behind as someone else's."""
    cluster = cluster_with_app()
    async with release(cluster, canary_body(analysis={"interval": "1m", "threshold": 2, "stepWeight": 10,
                                                       "maxWeight": 50})) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.reconcile()
        r.advance()
        cluster.lagging = True
        for _ in range(3):
            await r.reconcile()  # a write refused as stale would raise here
            r.advance()
        assert r.status.canary_weight == 30
        cluster.catch_up()
        cache = r.registry.services.cache
        route = next(key for key in cache._objects if key.kind is Kind.ROUTE)
        stored = cluster.objects[next(k for k in cluster.objects if k[0] in ("TrafficSplit", "HTTPRoute"))]
        assert cache.version(route) == stored["metadata"]["resourceVersion"], "the late events changed nothing"
        await r.reconcile()
        assert "RouteRestored" not in [e["reason"] for e in cluster.events()]
