"""Several controller processes in one namespace sharing one Lease, as replicas of a Deployment.

Which replica leads is read off the Lease (``holderIdentity``), never guessed from which one
started first: that is what the replicas themselves go by.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client

from e2e.harness.controller import Controller, lease_holder
from e2e.harness.kube import wait_for


@dataclass
class Replicas:
    """Controller replicas of one namespace; :meth:`start` the first, :meth:`add` the others."""

    make: Callable[[str], Controller]
    """A new, not yet started Controller for this namespace, given a replica name for its logs."""
    api: client.ApiClient
    namespace: str
    members: list[Controller] = field(default_factory=list)

    def start(self, count: int, *, leader: bool = True) -> Replicas:
        """Start ``count`` replicas: the first takes the Lease, the others join as followers.
        ``leader=False`` (sharded replicas, which hold bucket Leases instead): each is started
        once it answers /readyz."""
        for index in range(count):
            self.add(wait_for_lease=leader and index == 0)
        return self

    def add(self, *, wait_for_lease: bool = False) -> Controller:
        """One more replica, as the Deployment would create after losing a Pod."""
        replica = self.make(f"r{len(self.members) + 1}")
        self.members.append(replica)
        return replica.start(wait_for_lease=wait_for_lease)

    def holder(self) -> str | None:
        return lease_holder(self.api, self.namespace)

    def by_identity(self, identity: str | None) -> Controller | None:
        return next((m for m in self.members if m.process is not None and m.identity == identity), None)

    def leader(self) -> Controller | None:
        """The replica the Lease names, if it is one of ours."""
        return self.by_identity(self.holder())

    def identities(self) -> dict[str, Controller]:
        return {m.identity: m for m in self.members if m.process is not None}

    def wait_for_leader(self, *, other_than: Controller | None = None, timeout: float = 60) -> Controller:
        """Wait until a live replica other than ``other_than`` holds the Lease; return it."""
        def leading(member: Controller | None) -> bool:
            return member is not None and member is not other_than and member.alive()

        found = wait_for(self.leader, leading, timeout=timeout,
                         what=f"a replica other than {other_than.identity if other_than else None} to hold the Lease")
        assert found is not None
        return found

    def stop(self) -> None:
        # All at once: each takes seconds to shut down, and none waits for another.
        for member in self.members:
            if member.process is not None and member.alive():
                member.resume()
                member.process.signal(signal.SIGTERM)
        for member in self.members:
            member.stop()
