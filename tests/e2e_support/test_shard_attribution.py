"""The sharding scenario's proofs from the audit log: which Canary a write was for, who owned each
bucket when, and writes outside their sender's ownership."""

from __future__ import annotations

from e2e.harness.audit import AuditRecord
from e2e.harness.shard_attribution import (
    bucket_tenures,
    canary_of,
    canary_writes,
    writers,
    writes_outside_ownership,
)
from tests.e2e_support.test_audit import NS, A, B, agent, record

CANARIES = {"app-0001": 0, "app-0002": 1}


def _lease(bucket: int) -> str:
    return f"canary-controller-bucket-{bucket}"


def bucket_write(identity: str, bucket: int, at: float, code: int = 200) -> AuditRecord:
    return record(verb="update", user_agent=agent(identity), resource="leases", name=_lease(bucket),
                  group="coordination.k8s.io", subresource=None, code=code, at=at)


def write(identity: str, name: str, at: float, resource: str = "canaries") -> AuditRecord:
    return record(user_agent=agent(identity), resource=resource, name=name, at=at,
                  subresource="status" if resource == "canaries" else None)


def test_objects_made_for_a_canary_are_its_own() -> None:
    names = set(CANARIES)
    assert canary_of("app-0001", names) == "app-0001"
    assert canary_of("app-0001-primary", names) == "app-0001"
    assert canary_of("app-0002-canary", names) == "app-0002"
    assert canary_of("app-0001.17f3a9c2d1", names) == "app-0001"
    assert canary_of("app-00011", names) is None
    assert canary_of("other-primary", names) is None
    assert canary_of(None, names) is None


def test_lease_writes_and_harness_writes_are_not_canary_writes() -> None:
    records = [bucket_write(A, 0, 0), write(A, "app-0001", 1), write(B, "app-0001-primary", 2, "deployments"),
               record(user_agent="canary-e2e-harness/1", resource="deployments", name="app-0001", at=3,
                      subresource=None)]
    found = canary_writes(records, namespace=NS, canaries=CANARIES)
    assert [(w.canary, w.identity) for w in found] == [("app-0001", A), ("app-0001", B)]
    assert writers(found) == {"app-0001": {A, B}}


def _outside(records: list[AuditRecord]) -> list[tuple[str, str]]:
    tenures = bucket_tenures(records, namespace=NS, lease_name=_lease, buckets=2)
    found = canary_writes(records, namespace=NS, canaries=CANARIES)
    return [(w.canary, w.identity) for w in writes_outside_ownership(found, tenures, CANARIES.__getitem__)]


def test_each_replica_writing_the_canaries_of_its_own_buckets_is_clean() -> None:
    assert _outside([bucket_write(A, 0, 0), bucket_write(B, 1, 0), write(A, "app-0001", 1), write(B, "app-0002", 1),
                     bucket_write(B, 0, 20), write(B, "app-0001", 21)]) == []


def test_a_write_for_a_bucket_another_replica_holds_is_found() -> None:
    assert _outside([bucket_write(A, 0, 0), bucket_write(B, 1, 0), write(A, "app-0002", 1)]) == [("app-0002", A)]


def test_a_write_by_the_old_owner_after_the_bucket_moved_is_found() -> None:
    assert _outside([bucket_write(A, 0, 0), bucket_write(B, 0, 20), write(A, "app-0001", 21)]) == [("app-0001", A)]


def test_a_write_before_its_bucket_was_taken_is_found() -> None:
    assert _outside([write(A, "app-0001", 0), bucket_write(A, 0, 1)]) == [("app-0001", A)]
