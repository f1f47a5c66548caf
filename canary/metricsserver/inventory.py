"""Which Deployments, Pods, DaemonSets, StatefulSets and namespaces exist.

A request about an object that does not exist is answered 404, and a list has one item per
object that exists (not per name Prometheus remembers from the window, which would list deleted
objects). To keep the API load bounded however often the server is asked, the names of one kind
in one namespace come from a metadata-only LIST (``PartialObjectMetadataList``, paged by 500)
that is reused for ``ttl`` (10 s). A name missing from a fresh list triggers a new LIST only if
the last one is older than ``min_refresh`` (2 s), so an object created a moment ago is found
quickly while a stream of requests for a missing name costs at most one LIST per 2 s.
Concurrent requests for the same list share one LIST.

RBAC: ``list`` on deployments, daemonsets, statefulsets (``apps``), pods and namespaces (core).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from canary.metricsserver.cluster import METADATA_ACCEPT, KubeError, KubeReader
from canary.metricsserver.resources import Kind, ObjectKey

_PAGE = "500"


class InventoryUnavailable(KubeError):
    """The Kubernetes API could not say which objects exist."""


class Inventory(Protocol):
    async def names(self, kind: Kind, namespace: str | None) -> frozenset[ObjectKey]:
        """``(namespace, name)`` of the objects of ``kind`` in ``namespace`` (None: in all
        namespaces; namespaces themselves are ``(None, name)``). Raises InventoryUnavailable."""
        ...

    async def exists(self, kind: Kind, namespace: str | None, name: str) -> bool: ...

    async def check(self) -> None:
        """Raises InventoryUnavailable unless the Kubernetes API answers (for /readyz)."""
        ...


@dataclass
class _Entry:
    fetched: float
    names: frozenset[ObjectKey]


class KubeInventory:
    """:class:`Inventory` over the Kubernetes API with the cache described in the module doc."""

    def __init__(self, reader: KubeReader, *, ttl: timedelta, min_refresh: timedelta,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._ttl = ttl.total_seconds()
        self._min_refresh = min_refresh.total_seconds()
        self._clock = clock
        self._entries: dict[tuple[Kind, str | None], _Entry] = {}
        self._inflight: dict[tuple[Kind, str | None], asyncio.Future[_Entry]] = {}

    async def names(self, kind: Kind, namespace: str | None) -> frozenset[ObjectKey]:
        key = (kind, namespace)
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.fetched < self._ttl:
            return entry.names
        return (await self._refresh(key)).names

    async def exists(self, kind: Kind, namespace: str | None, name: str) -> bool:
        key, wanted = (kind, namespace), (namespace, name)
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.fetched < self._ttl and wanted in entry.names:
            return True
        if entry is not None and self._clock() - entry.fetched < self._min_refresh:
            return wanted in entry.names
        return wanted in (await self._refresh(key)).names

    async def check(self) -> None:
        await self._list(Kind.NAMESPACES, None, limit="1")

    async def _refresh(self, key: tuple[Kind, str | None]) -> _Entry:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            entry = _Entry(self._clock(), await self._list(*key))
            self._store(key, entry)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody else awaited logs nothing
            raise
        finally:
            del self._inflight[key]

    def _store(self, key: tuple[Kind, str | None], entry: _Entry) -> None:
        # Drop expired lists so that requests across many namespaces do not grow the cache forever.
        now = self._clock()
        for old in [k for k, e in self._entries.items() if now - e.fetched >= self._ttl]:
            del self._entries[old]
        self._entries[key] = entry

    async def _list(self, kind: Kind, namespace: str | None, *, limit: str = _PAGE) -> frozenset[ObjectKey]:
        path = kind.info.list_path(kind.value, namespace)
        names: set[ObjectKey] = set()
        token = ""
        while True:
            query = [("limit", limit)] + ([("continue", token)] if token else [])
            try:
                body = await self._reader.get(path, query=query, accept=METADATA_ACCEPT)
            except KubeError as exc:
                raise InventoryUnavailable(f"cannot list {kind.value}: {exc}", exc.status) from exc
            for item in body.get("items") or []:
                metadata = (item or {}).get("metadata") or {}
                name, item_namespace = metadata.get("name"), metadata.get("namespace")
                if not isinstance(name, str):
                    continue
                if not kind.namespaced:
                    names.add((None, name))
                elif isinstance(item_namespace, str):
                    names.add((item_namespace, name))
            token = str((body.get("metadata") or {}).get("continue") or "")
            if not token or limit != _PAGE:
                return frozenset(names)
