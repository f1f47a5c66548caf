"""Sharded replicas, from the audit log alone: who owned which bucket when, and which Canary each
controller write was for (pure functions over records).

Ownership of a bucket follows :mod:`e2e.harness.attribution`'s rule for the leader Lease, per
bucket Lease (``<lease>-bucket-<k>``): from each successful write by a new holder until the next
one. A release reads like a renewal at Metadata level, so a replica that gave a bucket up still
"owns" it until the next holder's first write; the scenario gives no bucket up once its Canaries
exist (its replicas settle first and then are only killed), so that case does not weaken it.

A write is for a Canary when its object is one the controller makes of or for it: the Canary
itself (and its status), ``<name>``, ``<name>-primary`` and ``<name>-canary`` (Deployments,
Services, the route), and Events named ``<name>.<suffix>``. An Event created with
``generateName`` has no name in the audit record and is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from e2e.harness.attribution import LEASE_RESOURCE, Tenure, holder_at, lease_tenures
from e2e.harness.audit import AuditRecord

_SUFFIXES = ("-primary", "-canary")


@dataclass(frozen=True)
class CanaryWrite:
    record: AuditRecord
    canary: str
    identity: str


def canary_of(name: str | None, canaries: Collection[str]) -> str | None:
    """The Canary (one of ``canaries``) an object named ``name`` belongs to; None for others."""
    if not name:
        return None
    base = name.split(".", 1)[0]
    if base in canaries:
        return base
    for suffix in _SUFFIXES:
        if base.endswith(suffix) and base[: -len(suffix)] in canaries:
            return base[: -len(suffix)]
    return None


def canary_writes(records: Iterable[AuditRecord], *, namespace: str, canaries: Collection[str]) -> list[CanaryWrite]:
    """Controller writes (any outcome) in ``namespace`` for one of ``canaries``; oldest received first."""
    found: list[CanaryWrite] = []
    for record in records:
        identity = record.controller_identity
        if not record.is_write or identity is None or record.namespace != namespace:
            continue
        if record.resource == LEASE_RESOURCE:
            continue
        canary = canary_of(record.name, canaries)
        if canary is not None:
            found.append(CanaryWrite(record, canary, identity))
    return sorted(found, key=lambda w: w.record.received)


def writers(writes: Iterable[CanaryWrite]) -> dict[str, set[str]]:
    """Each Canary's writers (identities)."""
    by_canary: dict[str, set[str]] = {}
    for write in writes:
        by_canary.setdefault(write.canary, set()).add(write.identity)
    return by_canary


def bucket_tenures(records: Sequence[AuditRecord], *, namespace: str, lease_name: Callable[[int], str],
                   buckets: int) -> dict[int, list[Tenure]]:
    """Who held each bucket's Lease from when, in order."""
    return {bucket: lease_tenures(records, namespace=namespace, lease=lease_name(bucket)) for bucket in range(buckets)}


def writes_outside_ownership(writes: Iterable[CanaryWrite], tenures: Mapping[int, Sequence[Tenure]],
                             bucket_of: Callable[[str], int]) -> list[CanaryWrite]:
    """Writes received while their sender did not hold the bucket of their Canary.

    Empty means no Canary was ever written by two replicas whose ownership of it overlapped:
    ownership periods of one bucket never overlap (each ends where the next begins), and every
    write falls inside its sender's.
    """
    return [w for w in writes if holder_at(tenures.get(bucket_of(w.canary), ()), w.record.received) != w.identity]
