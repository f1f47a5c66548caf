"""kopf registrations: thin. Watch events feed the caches and wake reconcilers; nothing here decides.

Only watch-event and indexing handlers are used, so kopf writes nothing at all: every write,
the ``revertOnDeletion`` finalizer included, is the reconciler's, decided by ``decide`` and
fenced like every other (see ``execute``). kopf's own writes would be neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from canary.kube.api import CANARY_GROUP, CANARY_PLURAL, CANARY_VERSION
from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import ReconcilerRegistry
from canary.kube.workload_kinds.registry import WORKLOAD_KINDS
from canary.routers.factory import WATCHED_ROUTES

#: Resources watched only to keep the caches fresh and wake the Canaries that use them.
WATCHED: tuple[tuple[str, str, Kind], ...] = (
    *((workload.group, workload.plural, workload.kind) for workload in WORKLOAD_KINDS.values()),
    ("", "services", Kind.SERVICE),
    ("", "configmaps", Kind.CONFIG_MAP),
    ("", "secrets", Kind.SECRET),
    (CANARY_GROUP, "metrictemplates", Kind.METRIC_TEMPLATE),
    *((group, plural, Kind.ROUTE) for group, plural in WATCHED_ROUTES),
    # spec.autoscalerRef: the target's scaler and the primary's copy (KEDA's only where installed).
    ("autoscaling", "horizontalpodautoscalers", Kind.HPA),
    ("keda.sh", "scaledobjects", Kind.SCALED_OBJECT),
)


#: Objects per page of the initial LIST of each watched resource.
LIST_PAGE_SIZE = 200


def _key(kind: Kind, group: str, namespace: str, name: str) -> ObjectKey:
    return ObjectKey.route(group, namespace, name) if kind is Kind.ROUTE else ObjectKey(kind, namespace, name)


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items()}


def register(registry: kopf.OperatorRegistry, reconcilers: ReconcilerRegistry) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Our own Events say what happened.
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        # The initial LIST in pages: unpaged, every Deployment (Service, ...) of the cluster is
        # one response decoded whole before the first is projected into the cache, a start-up
        # peak of tens of MiB at a thousand Canaries that the process then keeps as heap.
        settings.watching.chunk_size = LIST_PAGE_SIZE

    @kopf.on.event(CANARY_GROUP, CANARY_VERSION, CANARY_PLURAL, registry=registry)
    async def canary_event(*, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        key = ObjectKey(Kind.CANARY, namespace or "", name)
        if type == "DELETED":
            await reconcilers.canary_deleted(key)
        else:
            reconcilers.canary_changed(key, _plain(body))

    for group, plural, kind in WATCHED:
        _watch(registry, reconcilers, group, plural, kind)


def _watch(registry: kopf.OperatorRegistry, reconcilers: ReconcilerRegistry, group: str, plural: str,
           kind: Kind) -> None:
    # Filled through an indexing handler on purpose: kopf runs no other handler (in particular
    # not the Canary's) until every indexed resource has been listed once. Without that
    # barrier a Canary seen before its ConfigMaps would hash a different revision and start a
    # run after every controller restart. The index itself stays empty (we return None).
    async def fill_cache(*, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        reconcilers.object_changed(_key(kind, group, namespace or "", name), _plain(body))

    async def on_event(*, type: str, namespace: str | None, name: str, **_: Any) -> None:
        if type == "DELETED":
            reconcilers.object_changed(_key(kind, group, namespace or "", name), None)

    kopf.index(group=group, plural=plural, registry=registry, id=f"cache-{plural}")(fill_cache)
    kopf.on.event(group=group, plural=plural, registry=registry, id=f"deleted-{plural}")(on_event)
