"""Which Canaries an object's change wakes: the cache's dependency map, one dependent or many."""

from __future__ import annotations

from canary.kube.cache import ClusterCache, Kind, ObjectKey

A, B, C = (ObjectKey(Kind.CANARY, "ns", name) for name in ("a", "b", "c"))
SHARED = ObjectKey(Kind.CONFIG_MAP, "ns", "shared")
OWN = ObjectKey(Kind.DEPLOYMENT, "ns", "a")


def test_each_object_names_the_canaries_that_depend_on_it() -> None:
    cache = ClusterCache()
    cache.set_dependencies(A, [SHARED, OWN])
    cache.set_dependencies(B, [SHARED])
    cache.set_dependencies(C, [SHARED])
    assert cache.dependents(SHARED) == {A, B, C}
    assert cache.dependents(OWN) == {A}
    assert cache.dependents(ObjectKey(Kind.SERVICE, "ns", "unknown")) == frozenset()


def test_a_dependency_dropped_stops_waking_that_canary_only() -> None:
    cache = ClusterCache()
    cache.set_dependencies(A, [SHARED, OWN])
    cache.set_dependencies(B, [SHARED])
    cache.set_dependencies(A, [OWN])
    assert cache.dependents(SHARED) == {B}
    cache.set_dependencies(B, [])
    assert cache.dependents(SHARED) == frozenset()
    assert cache.dependents(OWN) == {A}


def test_setting_the_same_dependencies_again_changes_nothing() -> None:
    cache = ClusterCache()
    cache.set_dependencies(A, [SHARED])
    cache.set_dependencies(A, [SHARED])
    cache.set_dependencies(B, [SHARED])
    cache.set_dependencies(B, [SHARED])
    assert cache.dependents(SHARED) == {A, B}


def test_a_forgotten_canary_leaves_nothing_behind() -> None:
    cache = ClusterCache()
    cache.set_dependencies(A, [SHARED, OWN])
    cache.set_dependencies(B, [SHARED])
    cache.forget_canary(A)
    cache.forget_canary(B)
    assert cache.dependents(SHARED) == frozenset()
    assert cache.dependents(OWN) == frozenset()
    assert cache._dependents == {} and cache._deps_of == {}
