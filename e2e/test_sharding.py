"""Sharding over Leases: three replicas share the Canaries; one is SIGKILLed and its Canaries are
taken over by the others, with no Canary ever acted on by two replicas at once (issue 13).

Size: 60 Canaries under ``make test``; ``E2E_SHARDING=full`` runs the issue's 3,000 (``make
bench``), and ``CANARY_SHARDING_CANARIES`` sets any other count. The replicas run as the chart's
ServiceAccount with the chart's lease settings (15 s lease, 10 s renew deadline, 2 s retry).

Who wrote what, and who owned which bucket when, comes from the API server's audit log only
(``e2e/harness/shard_attribution.py``); what the replicas believe is never asked.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest
from kubernetes import client

from canary.kube.shard_plan import bucket_lease_name, bucket_of
from canary.kube.shards import BUCKET_LABEL, GROUP_LABEL, ROLE_LABEL
from e2e.conftest import StartReplicas
from e2e.harness import app
from e2e.harness.attribution import unattributed_writes
from e2e.harness.audit import AuditLog, AuditRecord
from e2e.harness.controller import LEASE_NAME
from e2e.harness.environment import HARNESS_USER_AGENT, Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.replicas import Replicas
from e2e.harness.shard_attribution import bucket_tenures, canary_writes, writers, writes_outside_ownership

pytestmark = pytest.mark.slow

REPLICAS = 3
#: Four buckets per replica: enough that a dead replica's Canaries spread over both survivors.
BUCKETS = 12
SIZE_ENV, COUNT_ENV = "E2E_SHARDING", "CANARY_SHARDING_CANARIES"
SMALL, FULL = 60, 3000
#: The issue's target: a killed replica's Canaries are picked up within 30 s.
TAKEOVER_TARGET_S = 30.0
#: Of the killed replica's Canaries, this many get a new revision to prove the survivors act.
SHIPPED_MAX = 30
#: kwok Nodes hold 110 pods; each Canary has one primary pod, and for a moment its target's too.
PODS_PER_NODE = 110
#: Initialising took 0.5 s per Canary at 300 on a 2-core machine busy with other runs; the wait
#: allows more, for the busiest machine (it ends as soon as they are all Initialized).
INIT_SECONDS_PER_CANARY = 1.2


def full_size() -> bool:
    return os.environ.get(SIZE_ENV, "").strip().lower() == "full"


def canary_count() -> int:
    value = os.environ.get(COUNT_ENV, "").strip()
    if value:
        return max(REPLICAS, int(value))
    return FULL if full_size() else SMALL


def _name(index: int) -> str:
    return f"app-{index:04d}"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _bucket_holders(kube: Kube) -> dict[int, str]:
    """Each bucket's holder as its Lease names it now (a released or absent Lease: left out)."""
    listed: Any = client.CoordinationV1Api(kube.api).list_namespaced_lease(
        kube.namespace, label_selector=f"{GROUP_LABEL}={LEASE_NAME},{ROLE_LABEL}=bucket")
    return {int((lease.metadata.labels or {})[BUCKET_LABEL]): str(lease.spec.holder_identity)
            for lease in listed.items if lease.spec and lease.spec.holder_identity}


def _spread(holders: dict[int, str], live: Sequence[str]) -> bool:
    """Every bucket held by a live replica, each replica holding at most its fair share."""
    share = -(-BUCKETS // len(live))
    counts = [sum(1 for h in holders.values() if h == identity) for identity in live]
    return sorted(holders) == list(range(BUCKETS)) and set(holders.values()) <= set(live) and max(counts) <= share


def _statuses(kube: Kube) -> dict[str, dict[str, Any]]:
    listed = kube.custom.list_namespaced_custom_object("canary.dev", "v1alpha1", kube.namespace, "canaries")
    return {item["metadata"]["name"]: item.get("status") or {} for item in listed.get("items", [])}


def _phase_counts(kube: Kube) -> dict[str, int]:
    """How many Canaries are in each phase (what a timeout reports, rather than 3,000 statuses)."""
    return dict(Counter(str(status.get("phase")) for status in _statuses(kube).values()))


def _not_started(kube: Kube, before: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Those of ``names`` whose new revision no replica has taken up yet."""
    statuses = _statuses(kube)
    return [name for name in names if statuses[name].get("lastAppliedSpec") in (None, before[name])]


def _create_apps(kube: Kube, names: Sequence[str]) -> None:
    def create(name: str) -> None:
        kube.create(app.deployment(name, kube.namespace, annotations=app.behaviour("1"), replicas=1))
        kube.create(app.canary(name, kube.namespace, interval="10s"))

    # A few at a time: one by one, 3,000 of them would take minutes of round trips.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, names))


def _sync(audit: AuditLog, kube: Kube, since: int) -> list[AuditRecord]:
    """Every record since ``since`` up to now (a write of our own, once logged, comes after every
    request the API server completed before it)."""
    fence = f"audit-fence-{secrets.token_hex(3)}"
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": fence}, "data": {}})
    return audit.wait_for(lambda records: any(r.name == fence and r.verb == "create" for r in records),
                          since=since, timeout=60, what=f"the fence write {fence}")


def _lines(records: Sequence[AuditRecord]) -> str:
    return "\n".join(r.describe() for r in records[:40])


def test_replicas_share_the_canaries_and_a_killed_ones_are_taken_over_by_the_others(
    env: Environment, kube: Kube, start_replicas: StartReplicas, audit: AuditLog
) -> None:
    count = canary_count()
    if env.control_plane is not None:
        env.control_plane.ensure_nodes(3 + (2 * count) // PODS_PER_NODE + 1, timeout=120)
    env.use_flavour("linkerd")
    since = audit.mark()
    replicas: Replicas = start_replicas(REPLICAS, shard_buckets=BUCKETS,
                                        log_level="debug" if count <= SMALL else "info")
    identities = list(replicas.identities())
    holders = wait_for(lambda: _bucket_holders(kube), lambda h: _spread(h, identities), timeout=90,
                       what=f"the {BUCKETS} buckets to be spread over the {REPLICAS} replicas")

    names = [_name(i) for i in range(count)]
    bucket = {name: bucket_of(kube.namespace, name, BUCKETS) for name in names}
    began = time.monotonic()
    _create_apps(kube, names)
    wait_for(lambda: _phase_counts(kube), lambda counts: counts.get("Initialized") == count,
             timeout=120 + INIT_SECONDS_PER_CANARY * count, interval=1.0, what=f"all {count} Canaries to be Initialized")
    initialised_s = time.monotonic() - began
    assert _bucket_holders(kube) == holders, "the buckets stayed where they were while the Canaries started"

    records = _sync(audit, kube, since)
    stray = unattributed_writes(records, namespace=kube.namespace, user=env.controller_user,
                                harness_agent=HARNESS_USER_AGENT)
    assert not stray, "writes with the controllers' credentials that name no replica:\n" + _lines(stray)
    written = writers(canary_writes(records, namespace=kube.namespace, canaries=bucket))
    assert set(written) == set(names), f"Canaries never written: {sorted(set(names) - set(written))[:20]}"
    shared = {name: sorted(ids) for name, ids in written.items() if len(ids) != 1}
    assert not shared, f"Canaries written by more than one replica: {dict(list(shared.items())[:20])}"
    wrong = {name: ids for name, ids in written.items() if ids != {holders[bucket[name]]}}
    assert not wrong, f"Canaries written by a replica other than their bucket's holder: {dict(list(wrong.items())[:20])}"

    victim = replicas.by_identity(holders[0])
    assert victim is not None
    survivors = [identity for identity in identities if identity != victim.identity]
    orphaned = [name for name in names if holders[bucket[name]] == victim.identity]
    shipped = orphaned[:SHIPPED_MAX]
    before = {name: status.get("lastAppliedSpec") for name, status in _statuses(kube).items()}

    killed_wall, killed_at = _utc_now(), time.monotonic()
    victim.kill()
    for name in shipped:
        kube.patch_template_annotations(name, app.behaviour("2"))
    wait_for(lambda: _bucket_holders(kube), lambda h: _spread(h, survivors), timeout=90, interval=0.2,
             what=f"the survivors to hold every bucket of {victim.identity}")
    buckets_s = time.monotonic() - killed_at
    wait_for(lambda: _not_started(kube, before, shipped), lambda waiting: not waiting, timeout=90, interval=0.2,
             what=f"the survivors to start the releases of {len(shipped)} shipped Canaries")
    acted_s = time.monotonic() - killed_at

    figures = {"canaries": count, "replicas": REPLICAS, "buckets": BUCKETS, "initialised_s": round(initialised_s, 1),
               "orphaned": len(orphaned), "shipped": len(shipped), "buckets_taken_over_s": round(buckets_s, 1),
               "shipped_acted_on_s": round(acted_s, 1), "target_s": TAKEOVER_TARGET_S}
    print(f"sharding takeover: {json.dumps(figures)}")

    records = _sync(audit, kube, since)
    writes = canary_writes(records, namespace=kube.namespace, canaries=bucket)
    tenures = bucket_tenures(records, namespace=kube.namespace, lease_name=lambda k: bucket_lease_name(LEASE_NAME, k),
                             buckets=BUCKETS)
    outside = writes_outside_ownership(writes, tenures, bucket.__getitem__)
    assert not outside, "writes by a replica that did not own the Canary's bucket:\n" + _lines(
        [w.record for w in outside])
    late = [w for w in writes if w.identity == victim.identity and w.record.received > killed_wall]
    assert not late, "the killed replica wrote after it was killed:\n" + _lines([w.record for w in late])
    taken_over = {w.canary for w in writes if w.identity in survivors and w.record.received > killed_wall}
    assert set(shipped) <= taken_over, f"shipped Canaries no survivor wrote: {sorted(set(shipped) - taken_over)}"
    if full_size():
        # Only the measurement run (`make bench`) judges the time: in `make test` it is printed,
        # since a suite run with both cores busy must not fail on how long a takeover took.
        assert acted_s <= TAKEOVER_TARGET_S, f"the killed replica's Canaries were picked up too late: {figures}"
