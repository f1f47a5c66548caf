"""List-and-watch loops, one thread per resource, feeding events to the event loop.

Each :class:`Watcher` lists its resource, then watches from the list's resourceVersion, and:

* on **410 Gone** (an HTTP status or an ``ERROR`` event) lists again;
* on a **broken connection** retries with back-off, resuming from the last resourceVersion;
* for a **custom resource** finds the version to use by API discovery: the served version the
  resource prefers (HTTPRoute: v1, then v1beta1) or the group's preferred version (TrafficSplit,
  whose served versions depend on which mesh "installed" the CRD). When the group is not served
  it reports the resource absent (no objects) and polls discovery every few seconds. Discovery
  runs again whenever a watch ends (every ``watch_timeout`` seconds at most) and on 404, and a
  changed answer means relisting through the new version: that is how the mesh follows a CRD
  deleted and recreated with other versions.

Objects in ignored namespaces (by default the cluster's own: ``kube-system`` ...) are dropped
in the thread, so a shared cluster's system Pods get no backend servers. Objects are parsed in
the thread; an object that cannot be used arrives as a
:class:`~e2e.mesh.routing.Rejected` with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from e2e.mesh.kubeapi import (
    Gone,
    KubeError,
    NotFound,
    Transport,
    WatchStream,
    discover_group,
    resource_path,
    status_error,
)
from e2e.mesh.objects import ObjectError
from e2e.mesh.routes import Rejected

log = logging.getLogger(__name__)

Parser = Callable[[Mapping[str, Any], str], object]


@dataclass(frozen=True)
class ResourceKind:
    kind: str
    group: str
    plural: str
    parse: Parser
    #: A fixed version (core resources); None: find it by discovery.
    version: str | None = None
    #: Versions in order of preference among those served; empty: the group's preferred one.
    prefer: tuple[str, ...] = ()
    #: Server-side watch timeout; also how often discovery is re-checked while watching.
    watch_timeout: float = 60.0

    def api_version(self, version: str) -> str:
        return version if self.group == "" else f"{self.group}/{version}"


@dataclass(frozen=True)
class Relisted:
    """The complete current set of a resource's objects; ``version`` None: not served at all."""

    kind: str
    version: str | None
    objects: tuple[object, ...]


@dataclass(frozen=True)
class Upserted:
    kind: str
    obj: object


@dataclass(frozen=True)
class Removed:
    kind: str
    key: tuple[str, str]


WatchEvent = Relisted | Upserted | Removed
Sink = Callable[[WatchEvent], None]


class Watcher:
    def __init__(
        self,
        resource: ResourceKind,
        transport_factory: Callable[[], Transport],
        sink: Sink,
        *,
        absent_poll: float = 2.0,
        backoff: tuple[float, float] = (0.5, 10.0),
        ignore_namespaces: frozenset[str] = frozenset(),
    ) -> None:
        self.resource = resource
        self._ignore = ignore_namespaces
        self._factory = transport_factory
        self._sink = sink
        self._absent_poll = absent_poll
        self._backoff_min, self._backoff_max = backoff
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"watch-{resource.kind}", daemon=True)
        #: The version last reported to the sink ("" before the first report).
        self.reported: str | None = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.abort()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        transport = self._factory()
        delay = self._backoff_min
        while not self._stop.is_set():
            try:
                self._cycle(transport)
                delay = self._backoff_min
            except Gone as exc:
                log.info("%s: %s; listing again", self.resource.kind, exc.message)
            except NotFound as exc:
                log.info("%s: not served any more (%s); discovering again", self.resource.kind, exc.message)
                self._stop.wait(self._backoff_min)
            except KubeError as exc:
                if not self._stop.is_set():
                    log.warning("%s: %s; retrying in %.1fs", self.resource.kind, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)
            except Exception:  # noqa: BLE001 - a watcher must survive anything the cluster sends
                log.exception("%s: unexpected error; retrying in %.1fs", self.resource.kind, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)

    def _resolve(self, transport: Transport) -> str | None:
        r = self.resource
        if r.version is not None:
            return r.version
        group = discover_group(transport, r.group)
        if group is None:
            return None
        if not r.prefer:
            return group.preferred
        return next((v for v in r.prefer if v in group.served), None)

    def _cycle(self, transport: Transport) -> None:
        r = self.resource
        version = self._resolve(transport)
        if version is None:
            if self.reported is not None:
                log.info("%s: group %s not served; no objects", r.kind, r.group)
                self._report(Relisted(r.kind, None, ()))
            self._stop.wait(self._absent_poll)
            return
        path = resource_path(r.group, version, r.plural)
        api_version = r.api_version(version)
        body = transport.get(path)
        items = body.get("items") or []
        resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if self.reported != version:
            log.info("%s: watching %s (%d objects)", r.kind, api_version, len(items))
        kept = [item for item in items if not self._ignored(item)]
        self._report(Relisted(r.kind, version, tuple(self._parse(item, api_version) for item in kept)))
        while not self._stop.is_set():
            resource_version = self._watch(transport, path, api_version, resource_version)
            if r.version is None and self._resolve(transport) != version:
                return

    def _watch(self, transport: Transport, path: str, api_version: str, resource_version: str) -> str:
        r = self.resource
        params = {
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(r.watch_timeout)),
        }
        stream = transport.watch(path, params, r.watch_timeout)
        with self._lock:
            self._stream = stream
        try:
            for event in stream.events():
                if self._stop.is_set():
                    break
                kind = event.get("type")
                obj = event.get("object")
                if not isinstance(obj, Mapping):
                    continue
                if kind == "ERROR":
                    code = obj.get("code")
                    raise status_error(path, code if isinstance(code, int) else 500, str(obj.get("message", obj)))
                meta = obj.get("metadata") or {}
                resource_version = str(meta.get("resourceVersion") or resource_version)
                if self._ignored(obj):
                    continue
                if kind in ("ADDED", "MODIFIED"):
                    self._sink(Upserted(r.kind, self._parse(obj, api_version)))
                elif kind == "DELETED":
                    self._sink(Removed(r.kind, (str(meta.get("namespace") or ""), str(meta.get("name") or ""))))
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return resource_version

    def _ignored(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata")
        return bool(self._ignore) and isinstance(meta, Mapping) and meta.get("namespace") in self._ignore

    def _parse(self, obj: Mapping[str, Any], api_version: str) -> object:
        try:
            return self.resource.parse(obj, api_version)
        except (ObjectError, TypeError, AttributeError, ValueError, KeyError) as exc:
            # A shape no parser foresaw is still one bad object, not a reason to stop watching.
            reason = str(exc) if isinstance(exc, ObjectError) else f"unreadable object: {exc!r}"
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            return Rejected(
                kind=self.resource.kind,
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                reason=reason,
            )

    def _report(self, event: Relisted) -> None:
        self.reported = event.version
        self._sink(event)

