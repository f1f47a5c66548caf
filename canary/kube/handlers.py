"""kopf registrations: thin. Watch events feed the caches and wake reconcilers; nothing here decides.

Only watch-event handlers are used for Canaries, so kopf writes nothing to them, with one
exception a user opts into: ``revertOnDeletion: true`` needs a finalizer, because the
controller must give traffic back to the target before the Canary disappears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from canary.domain.status import Phase
from canary.kube.api import CANARY_GROUP, CANARY_PLURAL, CANARY_VERSION
from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import ReconcilerRegistry
from canary.routers.gatewayapi import GROUP as GATEWAY_GROUP
from canary.routers.smi import GROUP as SMI_GROUP

#: Resources watched only to keep the caches fresh and wake the Canaries that use them.
WATCHED: tuple[tuple[str, str, Kind], ...] = (
    ("apps", "deployments", Kind.DEPLOYMENT),
    ("", "services", Kind.SERVICE),
    ("", "configmaps", Kind.CONFIG_MAP),
    ("", "secrets", Kind.SECRET),
    (CANARY_GROUP, "metrictemplates", Kind.METRIC_TEMPLATE),
    (SMI_GROUP, "trafficsplits", Kind.ROUTE),
    (GATEWAY_GROUP, "httproutes", Kind.ROUTE),
)

REVERT_RETRY_SECONDS = 2.0


def _key(kind: Kind, group: str, namespace: str, name: str) -> ObjectKey:
    return ObjectKey.route(group, namespace, name) if kind is Kind.ROUTE else ObjectKey(kind, namespace, name)


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items()}


def _reverts_on_deletion(*, spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("revertOnDeletion"))


def register(registry: kopf.OperatorRegistry, reconcilers: ReconcilerRegistry) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Git owns the Canary's metadata and spec: kopf's bookkeeping goes to status.
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
        settings.persistence.finalizer = "canary.dev/revert-on-deletion"
        # Our own Events say what happened. kopf's would add one per retry of the
        # revertOnDeletion handler, every couple of seconds.
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.event(CANARY_GROUP, CANARY_VERSION, CANARY_PLURAL, registry=registry)
    async def canary_event(*, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        key = ObjectKey(Kind.CANARY, namespace or "", name)
        if type == "DELETED":
            await reconcilers.canary_deleted(key)
        else:
            reconcilers.canary_changed(key, _plain(body))

    for group, plural, kind in WATCHED:
        _watch(registry, reconcilers, group, plural, kind)

    @kopf.on.delete(CANARY_GROUP, CANARY_VERSION, CANARY_PLURAL, registry=registry,
                    when=_reverts_on_deletion)
    async def revert_on_deletion(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        key = ObjectKey(Kind.CANARY, namespace or "", name)
        reconcilers.canary_changed(key, _plain(body))
        reconciler = reconcilers.get(key)
        status = reconciler.last_status if reconciler is not None else None
        if status is None or status.phase is not Phase.TERMINATED:
            raise kopf.TemporaryError("giving traffic back to the target before deletion",
                                      delay=REVERT_RETRY_SECONDS)


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
