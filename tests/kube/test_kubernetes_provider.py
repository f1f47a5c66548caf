"""``provider: kubernetes`` released end to end against the in-memory cluster: blue/green with
the apex Service selecting the primary, no route object at any point, and a deletion with
``revertOnDeletion`` that hands the apex back and ends."""

from __future__ import annotations

from typing import Any

from canary.domain.status import Phase
from canary.kube.revision import REVISION_ANNOTATION
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import IMAGE, NS, canary_body, cluster_with_app, release

WRITES = ("create_", "replace_", "patch_", "delete_")


def _canary(**spec: Any) -> dict[str, Any]:
    body = canary_body("kubernetes", **spec)
    analysis = body["spec"]["analysis"]
    del analysis["stepWeight"], analysis["maxWeight"]
    analysis["iterations"] = 3
    return body


def _service(cluster: FakeCluster, name: str) -> dict[str, Any]:
    found = cluster.get("Service", NS, name)
    assert found is not None, f"no Service {name}"
    return found


def _no_custom_object_but_the_canary(cluster: FakeCluster) -> None:
    custom = [c for c in cluster.calls if c.api == "custom" and c.method.startswith(WRITES)]
    assert all("canaries" in c.args for c in custom), [(c.method, c.args[:4]) for c in custom]
    assert cluster.route_writes() == []


async def test_a_blue_green_release_switches_no_route_and_promotes() -> None:
    cluster = cluster_with_app()
    async with release(cluster, _canary()) as r:
        await r.initialize()
        assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo-primary"}
        assert _service(cluster, "podinfo-canary")["spec"]["selector"] == {"app": "podinfo"}
        assert r.deployment("podinfo")["spec"]["replicas"] == 0
        r.push("6.0.1")
        await r.run_until_phase(Phase.SUCCEEDED)
        primary = r.deployment("podinfo-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:6.0.1"
        assert primary["metadata"]["annotations"] == {REVISION_ANNOTATION: r.status.last_applied_spec}
        assert [e["message"] for e in cluster.events("Advanced")] == [
            "iteration 1/3 passed", "iteration 2/3 passed"]
        assert r.deployment("podinfo")["spec"]["replicas"] == 0
        assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo-primary"}
        # Settled: another pass writes nothing (no route the controller keeps failing to see).
        settled = len(cluster.calls)
        r.advance()
        await r.reconcile()
        assert [c.method for c in cluster.calls[settled:] if c.method.startswith(WRITES)] == []
    _no_custom_object_but_the_canary(cluster)
    assert r.status.phase is Phase.SUCCEEDED


async def test_revert_on_deletion_hands_the_apex_back_and_ends() -> None:
    cluster = cluster_with_app()
    async with release(cluster, _canary(revertOnDeletion=True)) as r:
        await r.initialize()
        await r.reconcile()
        assert r.canary["metadata"]["finalizers"] == ["canary.dev/revert-on-deletion"]
        cluster.delete("Canary", NS, "podinfo")
        await r.run_until(lambda rel: cluster.get("Canary", NS, "podinfo") is None)
    apex = _service(cluster, "podinfo")
    assert apex["spec"]["selector"] == {"app": "podinfo"}
    assert "ownerReferences" not in apex["metadata"]
    assert [e["reason"] for e in cluster.events()][-2:] == ["Terminating", "Terminated"]
    _no_custom_object_but_the_canary(cluster)
