"""The list/watch loops against an in-memory API server: relists, reconnects, CRD changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from e2e.mesh.app import default_resources
from e2e.mesh.kubeapi import TransportError
from e2e.mesh.objects import TrafficSplit
from e2e.mesh.routes import Rejected
from e2e.mesh.state import ClusterState
from e2e.mesh.watch import Relisted, ResourceKind, WatchEvent, Watcher
from tests.mesh.factories import http_route_obj, pod_obj, service_obj, split_obj
from tests.mesh.fake_api import FakeCluster, FakeTransport, fail_with

SMI = "split.smi-spec.io"
GW = "gateway.networking.k8s.io"


class Harness:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.events: list[WatchEvent] = []
        self.resources = {r.kind: r for r in default_resources(crd_watch_timeout=0.3)}
        self.state = ClusterState(self.resources)
        self.watchers: list[Watcher] = []

    def sink(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append(event)
            self.state.apply(event)

    def start(self, *kinds: str, watch_timeout: float | None = None) -> None:
        for kind in kinds:
            resource = self.resources[kind]
            if watch_timeout is not None:
                resource = ResourceKind(**{**resource.__dict__, "watch_timeout": watch_timeout})
            w = Watcher(resource, lambda: FakeTransport(self.cluster), self.sink, absent_poll=0.1, backoff=(0.05, 0.2))
            self.watchers.append(w)
            w.start()

    def stop(self) -> None:
        for w in self.watchers:
            w.stop()
        for w in self.watchers:
            w.join(2)
            assert not w._thread.is_alive()

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if predicate():
                    return
            assert time.monotonic() < deadline, f"timed out; events: {self.events[-5:]}"
            time.sleep(0.01)

    def names(self, kind: str) -> set[str]:
        observed = self.state.observed()
        objs = {"Service": observed.services, "Pod": observed.pods, "TrafficSplit": observed.splits,
                "HTTPRoute": observed.http_routes, "HTTPRouteGroup": observed.route_groups}[kind]  # fmt: skip
        return {o.meta.name for o in objs}


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(FakeCluster())
    yield h
    h.stop()


def test_lists_then_follows_changes(harness: Harness) -> None:
    c = harness.cluster
    c.put("", "services", service_obj("test", "podinfo", {"app": "podinfo"}))
    harness.start("Service", "Pod")
    harness.wait(lambda: harness.state.synced() is False and harness.names("Service") == {"podinfo"})
    c.put("", "services", service_obj("test", "podinfo-canary", {"app": "podinfo"}))
    c.put("", "pods", pod_obj("test", "podinfo", "a", {"app": "podinfo"}))
    harness.wait(lambda: harness.names("Service") == {"podinfo", "podinfo-canary"} and len(harness.names("Pod")) == 1)
    c.delete("", "services", "test", "podinfo")
    harness.wait(lambda: harness.names("Service") == {"podinfo-canary"})


def test_410_gone_relists(harness: Harness) -> None:
    c = harness.cluster
    c.put("", "services", service_obj("test", "a", {"app": "a"}))
    c.put("", "services", service_obj("test", "b", {"app": "b"}))
    harness.start("Service")
    harness.wait(lambda: harness.names("Service") == {"a", "b"})
    lists = c.count("GET /api/v1/services")
    c.compact_losing("", "services", "test", "a")
    harness.wait(lambda: harness.names("Service") == {"b"})
    assert c.count("GET /api/v1/services") == lists + 1
    c.put("", "services", service_obj("test", "c", {"app": "c"}))
    harness.wait(lambda: harness.names("Service") == {"b", "c"})


def test_injected_410_status_relists_and_errors_are_retried(harness: Harness) -> None:
    c = harness.cluster
    c.put("", "services", service_obj("test", "a", {"app": "a"}))
    c.fail_next.extend([TransportError("connection refused"), fail_with(500)])
    harness.start("Service", watch_timeout=0.2)
    harness.wait(lambda: harness.names("Service") == {"a"})
    with c.lock:
        c.fail_next.append(fail_with(410))
    lists = c.count("GET /api/v1/services")
    harness.wait(lambda: c.count("GET /api/v1/services") > lists)
    c.put("", "services", service_obj("test", "b", {"app": "b"}))
    harness.wait(lambda: harness.names("Service") == {"a", "b"})


def test_traffic_split_follows_the_installed_flavour(harness: Harness) -> None:
    c = harness.cluster
    harness.start("TrafficSplit")
    # No CRD: reported as not served, which counts as synced.
    harness.wait(lambda: any(isinstance(e, Relisted) and e.version is None for e in harness.events))
    assert harness.state.resources()["TrafficSplit"] == {"synced": True, "version": None, "objects": 0}

    # Linkerd's SMI extension: v1alpha1 and v1alpha2, preferred v1alpha2.
    c.serve_group(SMI, ("v1alpha2", "v1alpha1"), "v1alpha2")
    c.put(SMI, "trafficsplits", split_obj("test", "podinfo", [("p", "900m"), ("c", "100m")], version="v1alpha1"))
    harness.wait(lambda: harness.names("TrafficSplit") == {"podinfo"})
    assert harness.state.resources()["TrafficSplit"]["version"] == "v1alpha2"
    (split,) = harness.state.observed().splits
    assert split.meta.api_version == f"{SMI}/v1alpha2"
    assert [float(b.weight) for b in split.backends] == [0.9, 0.1]

    # The CRD is deleted, then recreated as the SMI SDK's, serving v1alpha4 only.
    c.remove_group(SMI)
    harness.wait(lambda: harness.names("TrafficSplit") == set())
    c.serve_group(SMI, ("v1alpha4",), "v1alpha4")
    c.put(SMI, "trafficsplits", split_obj("test", "podinfo", [("p", 50), ("c", 50)], version="v1alpha4"))
    harness.wait(lambda: harness.state.resources()["TrafficSplit"]["version"] == "v1alpha4" and len(harness.state.observed().splits) == 1)
    (split,) = harness.state.observed().splits
    assert split.meta.api_version == f"{SMI}/v1alpha4"


def test_a_new_preferred_version_is_picked_up_without_a_watch_failure(harness: Harness) -> None:
    c = harness.cluster
    c.serve_group(SMI, ("v1alpha2",), "v1alpha2")
    c.put(SMI, "trafficsplits", split_obj("test", "podinfo", [("p", 1)], version="v1alpha2"))
    harness.start("TrafficSplit")
    harness.wait(lambda: harness.state.resources()["TrafficSplit"]["version"] == "v1alpha2")
    c.serve_group(SMI, ("v1alpha3", "v1alpha2"), "v1alpha3")
    harness.wait(lambda: harness.state.resources()["TrafficSplit"]["version"] == "v1alpha3")
    assert harness.names("TrafficSplit") == {"podinfo"}


def test_http_route_prefers_v1_then_v1beta1(harness: Harness) -> None:
    c = harness.cluster
    c.serve_group(GW, ("v1beta1",), "v1beta1")
    c.put(GW, "httproutes", http_route_obj("test", "podinfo", [("a", 1)]))
    harness.start("HTTPRoute")
    harness.wait(lambda: harness.state.resources()["HTTPRoute"]["version"] == "v1beta1")
    c.serve_group(GW, ("v1", "v1beta1"), "v1beta1")
    harness.wait(lambda: harness.state.resources()["HTTPRoute"]["version"] == "v1")
    (route,) = harness.state.observed().http_routes
    assert route.meta.api_version == f"{GW}/v1"


def test_unusable_objects_arrive_as_rejected(harness: Harness) -> None:
    c = harness.cluster
    c.serve_group(SMI, ("v1alpha2",), "v1alpha2")
    c.put(SMI, "trafficsplits", split_obj("test", "bad", [("p", "lots")]))
    harness.start("TrafficSplit")
    harness.wait(lambda: bool(harness.state.observed().rejected))
    (rejected,) = harness.state.observed().rejected
    assert isinstance(rejected, Rejected) and rejected.name == "bad" and "weight" in rejected.reason
    # Fixing it replaces the rejection.
    c.put(SMI, "trafficsplits", split_obj("test", "bad", [("p", 1)]))
    harness.wait(lambda: not harness.state.observed().rejected)
    assert isinstance(harness.state.observed().splits[0], TrafficSplit)


def test_all_synced_once_every_resource_reported(harness: Harness) -> None:
    harness.start(*harness.resources)
    harness.wait(harness.state.synced)


def test_ignored_namespaces_are_dropped_in_the_thread() -> None:
    cluster = FakeCluster()
    cluster.put("", "pods", pod_obj("kube-system", "coredns", "a", {"k8s-app": "kube-dns"}))
    cluster.put("", "pods", pod_obj("test", "podinfo", "a", {"app": "podinfo"}))
    h = Harness(cluster)
    w = Watcher(h.resources["Pod"], lambda: FakeTransport(cluster), h.sink, ignore_namespaces=frozenset({"kube-system"}))
    h.watchers.append(w)
    w.start()
    try:
        h.wait(lambda: len(h.names("Pod")) == 1)
        cluster.put("", "pods", pod_obj("kube-system", "metrics", "b", {"k8s-app": "metrics"}))
        cluster.put("", "pods", pod_obj("test", "podinfo", "b", {"app": "podinfo"}))
        h.wait(lambda: len(h.names("Pod")) == 2)
        assert all(p.meta.namespace == "test" for p in h.state.observed().pods)
    finally:
        h.stop()
