"""Which hash buckets of Canaries this replica should take or give up. Pure.

Sharding (``canary.kube.shards``) spreads the Canaries over replicas in a fixed number of
buckets: a Canary's bucket is a stable hash of ``namespace/name``, so every replica computes the
same bucket for it without talking to the others, and each bucket has a Lease that at most one
replica holds. Each replica also holds a membership Lease, so every replica can count the live
members and compute its fair share, ``ceil(buckets / members)``:

* below its share, it takes free buckets (no holder, or a holder whose Lease expired), starting
  at a point of the ring that depends on its identity, so that replicas short of buckets at the
  same moment try different ones rather than all racing for bucket 0;
* above its share (a replica joined), it gives up the excess, highest bucket numbers first;
* at its share, it does nothing. Shares add up to at least the number of buckets, so while a
  bucket is free some live replica is below its share and takes it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["ShardPlan", "bucket_lease_name", "bucket_of", "fair_share", "member_lease_name", "plan"]


def _digest(text: str) -> int:
    # sha256 rather than hash(): Python salts str hashes per process, and every replica (and
    # every version of the controller) must put a Canary in the same bucket.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def bucket_of(namespace: str, name: str, buckets: int) -> int:
    """The bucket of the Canary ``namespace/name``, in ``range(buckets)``."""
    return _digest(f"{namespace}/{name}") % buckets


def bucket_lease_name(lease_name: str, bucket: int) -> str:
    return f"{lease_name}-bucket-{bucket}"


def member_lease_name(lease_name: str, identity: str) -> str:
    """A replica's membership Lease: a digest of its identity, which (hostname_pid) is no valid
    object name, and a fresh name per process, so a restarted replica never waits for its
    predecessor's Lease to expire."""
    return f"{lease_name}-member-{_digest(identity):016x}"


def fair_share(buckets: int, members: int) -> int:
    return math.ceil(buckets / max(members, 1))


@dataclass(frozen=True)
class ShardPlan:
    """What to do this round: buckets to try to take, buckets to give up."""

    take: tuple[int, ...] = ()
    shed: tuple[int, ...] = ()


def plan(*, identity: str, buckets: int, members: int, held: Collection[int], free: Collection[int]) -> ShardPlan:
    """One round's decision. ``held``: the buckets this replica holds (and is not giving up
    already); ``free``: the buckets nobody live holds; ``members``: live replicas, this one
    included."""
    share = fair_share(buckets, members)
    if len(held) > share:
        return ShardPlan(shed=tuple(sorted(held, reverse=True)[: len(held) - share]))
    wanted = share - len(held)
    if wanted == 0 or not free:
        return ShardPlan()
    start = _digest(identity) % buckets
    ring = sorted(free, key=lambda bucket: (bucket - start) % buckets)
    return ShardPlan(take=tuple(ring[:wanted]))
