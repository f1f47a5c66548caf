"""Every change of chosen objects in one namespace, recorded from watches, in the API server's order.

A scenario that asserts "never X while Y" must see every state the objects went through, not
samples: a route that gave a canary weight for 50 ms between two polls is still a fault. So
:class:`ChangeRecorder` lists, then watches each kind in its own thread and keeps every ADDED,
MODIFIED and DELETED object it is told about.

Two watch streams do not deliver their events in a common order, so the recording is put in
order by ``metadata.resourceVersion`` instead of by arrival. On one etcd (the local control
plane) a resourceVersion is etcd's revision of the write, one counter for every key, so ordering
by it gives the order in which the writes really happened across kinds. The Kubernetes API
calls resourceVersions opaque; comparing them is an assumption of this test harness about the
clusters it runs on (a single etcd), stated here rather than hidden.

A watch that ends (its timeout, a dropped connection) resumes from the last resourceVersion it
saw; bookmarks keep that version fresh while a kind is quiet. If the API server answers 410
Gone (the version was compacted away), changes may have been missed: the recorder lists again
and counts a *gap*, and a scenario that needs a complete history must check ``gaps == 0``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

_WATCH_SECONDS = 5


@dataclass(frozen=True)
class WatchedKind:
    """How to list and watch one kind: ``lister(namespace, **kwargs)`` is a list call of the client."""

    kind: str
    lister: Callable[..., Any]


def deployments(api: client.ApiClient) -> WatchedKind:
    return WatchedKind("Deployment", client.AppsV1Api(api).list_namespaced_deployment)


def custom(api: client.ApiClient, kind: str, group: str, version: str, plural: str) -> WatchedKind:
    list_custom = client.CustomObjectsApi(api).list_namespaced_custom_object

    def lister(namespace: str, **kwargs: Any) -> Any:
        return list_custom(group, version, namespace, plural, **kwargs)

    return WatchedKind(kind, lister)


@dataclass(frozen=True)
class Change:
    """One state of one object: the body the API server reported, and when it reached us."""

    rv: int
    kind: str
    name: str
    type: str  # LISTED (from a list), ADDED, MODIFIED or DELETED
    at: float  # time.monotonic() at arrival; for reports only, never for ordering
    body: dict[str, Any]


@dataclass
class ChangeRecorder:
    api: client.ApiClient
    namespace: str
    kinds: Sequence[WatchedKind]
    gaps: int = 0
    errors: list[str] = field(default_factory=list)
    _changes: list[Change] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _listed: threading.Barrier | None = None

    def __enter__(self) -> ChangeRecorder:
        # Return only once every kind is listed, so nothing the scenario does next is missed.
        self._listed = threading.Barrier(len(self.kinds) + 1)
        for kind in self.kinds:
            thread = threading.Thread(target=self._run, args=(kind,), name=f"record-{kind.kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._listed.wait(timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(_WATCH_SECONDS + 10)

    def history(self) -> list[Change]:
        """Every recorded state, in the order the API server wrote them."""
        with self._lock:
            return sorted(self._changes, key=lambda c: c.rv)

    def of(self, kind: str, name: str) -> list[Change]:
        return [c for c in self.history() if c.kind == kind and c.name == name]

    # --- the watch loop ------------------------------------------------------------------
    def _record(self, kind: str, type_: str, body: dict[str, Any]) -> int:
        meta = body.get("metadata") or {}
        rv = int(meta.get("resourceVersion") or 0)
        change = Change(rv=rv, kind=kind, name=str(meta.get("name")), type=type_, at=time.monotonic(), body=body)
        with self._lock:
            self._changes.append(change)
        return rv

    def _list(self, kind: WatchedKind) -> str:
        listed = client.ApiClient.sanitize_for_serialization(self.api, kind.lister(self.namespace))  # type: ignore[no-untyped-call]
        for item in listed.get("items") or []:
            self._record(kind.kind, "LISTED", item)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def _run(self, kind: WatchedKind) -> None:
        version = self._list(kind)
        assert self._listed is not None
        self._listed.wait(timeout=60)
        while not self._stop.is_set():
            try:
                version = self._watch(kind, version)
            except ApiException as exc:
                if exc.status != 410:
                    self.errors.append(f"{kind.kind}: {exc.status} {exc.reason}")
                    self._stop.wait(0.5)
                self.gaps += 1
                version = self._list(kind)
            except Exception as exc:  # noqa: BLE001 - a dropped stream is resumed, and reported
                self.errors.append(f"{kind.kind}: {exc!r}")
                self._stop.wait(0.5)
                version = self._list(kind)

    def _watch(self, kind: WatchedKind, version: str) -> str:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        events: Iterator[dict[str, Any]] = stream.stream(  # type: ignore[no-untyped-call]
            kind.lister, self.namespace, resource_version=version, timeout_seconds=_WATCH_SECONDS,
            allow_watch_bookmarks=True, deserialize=False,
        )
        for event in events:
            body = event.get("object") or {}
            version = str((body.get("metadata") or {}).get("resourceVersion") or version)
            if event.get("type") != "BOOKMARK":
                self._record(kind.kind, str(event.get("type")), body)
            if self._stop.is_set():
                stream.stop()  # type: ignore[no-untyped-call]
        return version
