"""An in-memory API server for Leases, and a clock moved by hand: for election and sharding tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from kubernetes.client import V1Lease, V1LeaseList, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from canary.kube.leader import LeaseRecord

EPOCH = datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=timezone.utc)


class FakeLeaseApi:
    """An API server for one kind: Leases, with resourceVersion checks like the real one."""

    def __init__(self, namespace: str = "canary-system", name: str = "canary-controller") -> None:
        #: The Lease that ``put``, ``record`` and ``resource_version`` speak of.
        self.namespace, self.name = namespace, name
        self.leases: dict[tuple[str, str], Any] = {}
        self.version = 0
        self.calls: list[str] = []
        #: Raised by every call while set (API server down).
        self.failure: Exception | None = None
        #: Runs just before a replace is checked: another candidate writing first.
        self.before_replace: Callable[[], None] | None = None
        #: While set, reads block until it is cleared (a hung connection).
        self.hang: threading.Event | None = None

    def _store(self, namespace: str, name: str, lease: Any) -> Any:
        self.version += 1
        lease = copy.deepcopy(lease)
        lease.metadata.resource_version = str(self.version)
        lease.metadata.namespace = namespace
        self.leases[namespace, name] = lease
        return copy.deepcopy(lease)

    def _check(self, call: str, kwargs: dict[str, Any]) -> None:
        assert kwargs.get("_request_timeout"), "every call is bounded"
        self.calls.append(call)
        if self.failure is not None:
            raise self.failure

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        if self.hang is not None:
            self.hang.wait(5)
        self._check("read", kwargs)
        if (namespace, name) not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[namespace, name])

    def create_namespaced_lease(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        self._check("create", kwargs)
        if (namespace, body.metadata.name) in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(namespace, body.metadata.name, body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any:
        self._check("replace", kwargs)
        if self.before_replace is not None:
            self.before_replace()
        current = self.leases.get((namespace, name))
        if current is None or current.metadata.resource_version != body.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(namespace, name, body)

    def list_namespaced_lease(self, namespace: str, **kwargs: Any) -> Any:
        self._check("list", kwargs)
        wanted = dict(term.split("=", 1) for term in (kwargs.get("label_selector") or "").split(",") if term)
        items = [copy.deepcopy(lease) for (ns, _), lease in sorted(self.leases.items())
                 if ns == namespace and wanted.items() <= (lease.metadata.labels or {}).items()]
        return V1LeaseList(items=items)

    def delete_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        self._check("delete", kwargs)
        current = self.leases.get((namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        body = kwargs.get("body")
        wanted = body.preconditions.resource_version if body is not None and body.preconditions else None
        if wanted is not None and wanted != current.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        del self.leases[namespace, name]
        return None

    def holder(self, name: str) -> str | None:
        """The holder a Lease names now; None when it has none or does not exist."""
        lease = self.leases.get((self.namespace, name))
        return LeaseRecord.from_lease(lease).holder if lease is not None else None

    def put(self, holder: str | None, renew: datetime, duration: int = 15, transitions: int = 3) -> None:
        """Write the Lease directly, as another replica would."""
        spec = V1LeaseSpec(holder_identity=holder, lease_duration_seconds=duration, acquire_time=renew,
                           renew_time=renew, lease_transitions=transitions)
        self._store(self.namespace, self.name, V1Lease(metadata=V1ObjectMeta(name=self.name), spec=spec))

    def record(self) -> LeaseRecord:
        return LeaseRecord.from_lease(self.leases[self.namespace, self.name])

    def resource_version(self) -> str:
        return str(self.leases[self.namespace, self.name].metadata.resource_version)


class Time:
    """Monotonic and wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.seconds = 100.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.seconds - 100.0)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
