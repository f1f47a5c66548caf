"""Fenced writes through the reconciler: a view the writer no longer owns never reaches the cluster.

Each test plays one way a controller's view goes stale: another replica (or a person) writes the
status, the watch lags behind a write, the Lease runs out, or an error the pass cannot get past.
"""

from __future__ import annotations

import copy
from typing import Any

from canary.domain.status import ConditionType, Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.errors import ApiError
from canary.kube.fence import LeaseGuard
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import NS, Release, cluster_with_app, release

STATUS_PATCH = "patch_namespaced_custom_object_status"


def _write_status_behind_the_watch(cluster: FakeCluster, status: dict[str, Any]) -> None:
    """Another writer changes the stored status and our watch has not delivered it yet."""
    stored = cluster.objects[("Canary", NS, "podinfo")]
    stored["status"] = {**copy.deepcopy(stored.get("status") or {}), **status}
    stored["metadata"]["resourceVersion"] = str(next(cluster._versions))


def _write_status_seen_by_the_watch(cluster: FakeCluster, status: dict[str, Any]) -> None:
    _write_status_behind_the_watch(cluster, status)
    cluster._emit(("Canary", NS, "podinfo"))


async def _progress_to(r: Release, weight: int) -> None:
    await r.initialize()
    r.push("6.0.1")
    await r.run_until(lambda rel: rel.status.canary_weight == weight)


async def test_a_status_written_by_another_replica_is_what_the_next_pass_starts_from() -> None:
    # The split-brain that was seen: the new leader promoted, then the old one wrote its in-memory
    # view back (phase Succeeded, weight 40; 40% of traffic to a canary with no pods).
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 20)
        _write_status_seen_by_the_watch(cluster, {"phase": "Succeeded", "canaryWeight": 0,
                                                  "lastPromotedSpec": r.status.last_applied_spec})
        routes_before = len(cluster.route_writes())
        await r.reconcile()
        assert r.status.phase is Phase.SUCCEEDED and r.status.canary_weight == 0
        assert all(w == ALL_PRIMARY for w in cluster.route_writes()[routes_before:])


async def test_a_refused_status_write_rereads_the_canary_and_decides_again() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        _write_status_behind_the_watch(cluster, {"phase": "Succeeded", "canaryWeight": 0,
                                                 "lastPromotedSpec": r.status.last_applied_spec})
        r.advance()
        calls = len(cluster.calls)
        delay = await r.reconciler.run_pass(now=r.now)
        assert delay is not None and delay.total_seconds() == 0, "decide again at once"
        made = [c.method for c in cluster.calls[calls:]]
        # One status write, refused, then a read of the Canary; no route or workload write rested
        # on the stale view.
        assert made == [STATUS_PATCH, "get_namespaced_custom_object"], made
        assert r.status.phase is Phase.SUCCEEDED
        await r.reconciler.run_pass(now=r.now)
        assert r.status.phase is Phase.SUCCEEDED and r.status.canary_weight == 0
        assert cluster.route_writes()[-1] == ALL_PRIMARY


async def test_a_route_changed_behind_the_watch_is_reread_not_overwritten() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        route = cluster.objects[("TrafficSplit", NS, "podinfo")]
        route["metadata"]["resourceVersion"] = str(next(cluster._versions))
        r.advance()
        await r.reconciler.run_pass(now=r.now)
        assert cluster.calls[-1].method == "get_namespaced_custom_object"
        await r.reconciler.run_pass(now=r.now)
        assert cluster.route_writes()[-1] == Weights(primary=80, canary=20)


async def test_nothing_is_written_once_the_lease_is_not_proven() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        guard = LeaseGuard(lambda: 1000.0)
        guard.extend(999.0)  # renewed last more than a renew deadline ago: frozen past the Lease
        cluster.api.guard = guard
        stored = copy.deepcopy(r.canary)
        writes = len(cluster.writes())
        r.advance()
        await r.reconciler.run_pass(now=r.now)
        assert len(cluster.writes()) == writes
        assert r.canary == stored


async def test_an_error_the_pass_cannot_get_past_reports_stalled_and_clears_after() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        cluster.fail_next("replace_namespaced_custom_object", RuntimeError("route builder exploded"))
        r.advance()
        await r.reconciler.run_pass(now=r.now)
        stalled, reason, message = r.condition(ConditionType.STALLED)
        assert (stalled, reason) == (True, "ReconcileError")
        assert "RuntimeError: route builder exploded" in message
        assert [e["reason"] for e in cluster.events("ReconcileError")] == ["ReconcileError"]
        await r.reconciler.run_pass(now=r.now)
        assert r.condition(ConditionType.STALLED)[0] is False
        assert cluster.route_writes()[-1] == Weights(primary=80, canary=20)


async def test_transient_api_errors_stall_only_when_they_persist() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        r.advance()
        for attempt in range(1, 5):
            cluster.fail_next("replace_namespaced_custom_object", ApiError("503 Service Unavailable", 503))
            await r.reconciler.run_pass(now=r.now)
            assert r.condition(ConditionType.STALLED)[0] is (attempt >= 4), attempt


async def test_an_unreadable_status_fails_the_pass_without_ending_the_loop_or_losing_it() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _progress_to(r, 10)
        _write_status_seen_by_the_watch(cluster, {"lastAnalysisTime": "not a time"})
        stored = copy.deepcopy(r.canary["status"])
        r.advance()
        delay = await r.reconciler.run_pass(now=r.now)
        assert delay is not None and delay.total_seconds() > 0, "retried with back-off"
        assert r.canary["status"] == stored, "nothing the status held was overwritten"
