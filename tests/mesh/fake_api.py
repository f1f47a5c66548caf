"""An in-memory API server behind the mesh's ``Transport`` seam.

It serves discovery for custom API groups, lists and watches with resourceVersions, and can be
told to compact history (watches from older versions get a 410 ``ERROR`` event), to fail the
next requests, and to delete or recreate a CRD group with other versions (open watches on it
end, as the real API server ends them).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from e2e.mesh.kubeapi import NotFound, TransportError, status_error


@dataclass
class _Event:
    rv: int
    group: str
    plural: str
    type: str
    obj: dict[str, Any]


@dataclass
class FakeCluster:
    #: group -> (served versions, preferred version)
    groups: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    rv: int = 100
    compacted: int = 0
    fail_next: list[Exception] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    #: Bumped when a group is removed, so open watches on it end.
    group_epoch: dict[str, int] = field(default_factory=dict)

    # --- what tests do -----------------------------------------------------------------------

    def put(self, group: str, plural: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            store = self.objects.setdefault((group, plural), {})
            kind = "MODIFIED" if key in store else "ADDED"
            store[key] = obj
            self.events.append(_Event(self.rv, group, plural, kind, obj))
            self.lock.notify_all()

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            obj = self.objects.get((group, plural), {}).pop((namespace, name))
            self.rv += 1
            self.events.append(_Event(self.rv, group, plural, "DELETED", obj))
            self.lock.notify_all()

    def serve_group(self, group: str, versions: tuple[str, ...], preferred: str) -> None:
        with self.lock:
            self.groups[group] = (versions, preferred)
            self.lock.notify_all()

    def remove_group(self, group: str) -> None:
        """Delete the CRD: its objects are deleted (with events) and its watches end."""
        with self.lock:
            for (g, plural), store in self.objects.items():
                if g == group:
                    for key in list(store):
                        self.delete(g, plural, *key)
            self.groups.pop(group, None)
            self.group_epoch[group] = self.group_epoch.get(group, 0) + 1
            self.lock.notify_all()

    def compact_losing(self, group: str, plural: str, namespace: str, name: str) -> None:
        """Delete an object with its event already compacted away: open watches end, and the
        next watch gets a 410 ``ERROR`` event, so only a relist can notice the deletion."""
        with self.lock:
            self.objects.get((group, plural), {}).pop((namespace, name))
            self.rv += 1
            self.compacted = self.rv
            self.group_epoch[group] = self.group_epoch.get(group, 0) + 1
            self.lock.notify_all()

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.startswith(prefix))


class FakeTransport:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def _fail(self) -> None:
        if self.c.fail_next:
            raise self.c.fail_next.pop(0)

    def _resource(self, path: str) -> tuple[str, str, str]:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            return "", parts[1], parts[2]
        return parts[1], parts[2], parts[3]

    def _check_served(self, path: str, group: str, version: str) -> None:
        if group == "":
            return
        served = self.c.groups.get(group)
        if served is None or version not in served[0]:
            raise NotFound(path, 404, "the server could not find the requested resource")

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        with self.c.lock:
            self.c.calls.append(f"GET {path}")
            self._fail()
            parts = path.strip("/").split("/")
            if parts[0] == "apis" and len(parts) == 2:
                served = self.c.groups.get(parts[1])
                if served is None:
                    raise NotFound(path, 404, "not found")
                return {
                    "kind": "APIGroup",
                    "name": parts[1],
                    "versions": [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in served[0]],
                    "preferredVersion": {"groupVersion": f"{parts[1]}/{served[1]}", "version": served[1]},
                }
            group, version, plural = self._resource(path)
            self._check_served(path, group, version)
            items = []
            for obj in self.c.objects.get((group, plural), {}).values():
                item = copy.deepcopy(obj)
                item["apiVersion"] = f"{group}/{version}" if group else version
                items.append(item)
            return {"items": items, "metadata": {"resourceVersion": str(self.c.rv)}}

    def watch(self, path: str, params: Mapping[str, str], timeout: float) -> _FakeStream:
        with self.c.lock:
            self.c.calls.append(f"WATCH {path} rv={params.get('resourceVersion')}")
            self._fail()
            group, version, plural = self._resource(path)
            self._check_served(path, group, version)
            return _FakeStream(self.c, group, version, plural, int(params["resourceVersion"] or 0), timeout)


class _FakeStream:
    def __init__(self, cluster: FakeCluster, group: str, version: str, plural: str, rv: int, timeout: float) -> None:
        self.c, self.group, self.version, self.plural = cluster, group, version, plural
        self.rv = rv
        self.deadline = time.monotonic() + timeout
        self.aborted = False
        self.epoch = cluster.group_epoch.get(group, 0)

    def events(self) -> Iterator[dict[str, Any]]:
        with self.c.lock:
            if self.rv < self.c.compacted:
                yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
                return
        while True:
            with self.c.lock:
                pending = [e for e in self.c.events if e.rv > self.rv and (e.group, e.plural) == (self.group, self.plural)]
                if not pending:
                    if self.aborted:
                        raise TransportError("watch aborted")
                    if self.c.group_epoch.get(self.group, 0) != self.epoch or time.monotonic() >= self.deadline:
                        return
                    self.c.lock.wait(0.05)
                    continue
            for event in pending:
                self.rv = event.rv
                obj = copy.deepcopy(event.obj)
                obj["apiVersion"] = f"{self.group}/{self.version}" if self.group else self.version
                yield {"type": event.type, "object": obj}

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


def fail_with(status: int) -> Exception:
    return status_error("/injected", status, "injected failure")
