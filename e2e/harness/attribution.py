"""Who led when, and who wrote what, from the audit log alone (pure functions over records).

The Lease's holder at any moment is the replica that made the last successful write to the Lease
before that moment: acquiring and renewing are both writes, and a candidate whose write failed
(409) does not hold it. Metadata-level records carry no bodies, so a holder's release of the Lease
on a clean shutdown reads like one more renewal; the scenarios end replicas by SIGKILL or keep
them running, so that case does not arise in them.

"Only one acts at a time" then reads: every other write a replica sends (status, route,
Deployment, Service, Event, anything) is received while that replica holds the Lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from e2e.harness.audit import AuditRecord

LEASE_RESOURCE = "leases"
LEASE_GROUP = "coordination.k8s.io"


@dataclass(frozen=True)
class Tenure:
    """From ``since`` until the next tenure, ``identity`` held the Lease."""

    identity: str
    since: datetime


def is_lease_write(record: AuditRecord, *, namespace: str, lease: str) -> bool:
    return (record.is_write and record.resource == LEASE_RESOURCE and record.api_group == LEASE_GROUP
            and record.namespace == namespace and record.name == lease)


def lease_tenures(records: Iterable[AuditRecord], *, namespace: str, lease: str) -> list[Tenure]:
    """Who held the Lease from when, in order, from the successful writes controllers made to it."""
    tenures: list[Tenure] = []
    holds = sorted(
        (r for r in records
         if is_lease_write(r, namespace=namespace, lease=lease) and r.succeeded and r.controller_identity),
        key=lambda r: r.completed,
    )
    for record in holds:
        identity = record.controller_identity
        assert identity is not None
        if not tenures or tenures[-1].identity != identity:
            tenures.append(Tenure(identity, record.completed))
    return tenures


def holder_at(tenures: Sequence[Tenure], at: datetime) -> str | None:
    """Who held the Lease at ``at`` by ``tenures``; None before the first."""
    holder: str | None = None
    for tenure in tenures:
        if tenure.since > at:
            break
        holder = tenure.identity
    return holder


def controller_writes(records: Iterable[AuditRecord], *, namespace: str, lease: str) -> list[AuditRecord]:
    """Write requests by a controller in ``namespace``, except to the Lease; oldest received first."""
    return sorted(
        (r for r in records
         if r.is_write and r.controller_identity and r.namespace == namespace
         and not is_lease_write(r, namespace=namespace, lease=lease)),
        key=lambda r: r.received,
    )


def writes_by_non_holders(records: Sequence[AuditRecord], *, namespace: str, lease: str) -> list[AuditRecord]:
    """Controller writes (any outcome) received while their sender did not hold the Lease."""
    tenures = lease_tenures(records, namespace=namespace, lease=lease)
    return [w for w in controller_writes(records, namespace=namespace, lease=lease)
            if holder_at(tenures, w.received) != w.controller_identity]


def writes_by(records: Iterable[AuditRecord], identity: str, *, after: datetime) -> list[AuditRecord]:
    """Every write request (the Lease included) ``identity`` sent that arrived after ``after``."""
    return sorted((r for r in records if r.is_write and r.controller_identity == identity and r.received > after),
                  key=lambda r: r.received)


def first_write(records: Iterable[AuditRecord], identity: str, *, namespace: str, lease: str,
                after: datetime) -> AuditRecord | None:
    """The first write other than to the Lease that ``identity`` sent after ``after``: its first act."""
    acts = [w for w in controller_writes(records, namespace=namespace, lease=lease)
            if w.controller_identity == identity and w.received > after]
    return acts[0] if acts else None


def unattributed_writes(records: Iterable[AuditRecord], *, namespace: str, user: str,
                        harness_agent: str) -> list[AuditRecord]:
    """Writes in ``namespace`` made with the controllers' credentials (``user``) that name no
    controller identity and are not the harness's own: writes the audit cannot pin on a replica."""
    return [r for r in records
            if r.is_write and r.namespace == namespace and r.user == user
            and not r.controller_identity and not r.user_agent.startswith(harness_agent)]
