"""Carries out a Decision: the status write first, then the actions, in order.

Every action here is idempotent (create-if-missing, replace-to-desired, scale-to-N), so
running it twice after a crash is harmless; the decision layer re-derives any action that a
crash lost. A failed action raises and stops the rest: later actions in a Decision may depend
on earlier ones (never scale the canary down before traffic has left it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiohttp

from canary.domain.actions import (
    Action, EnsurePrimary, EnsureServices, Event, Notify, PromotePrimary, RestoreTarget, ScaleCanary, SetRoute,
)
from canary.domain.spec import CanarySpec, WebhookSpec, WebhookType
from canary.domain.status import CanaryStatus, Phase
from canary.errors import Conflict, NotFound
from canary.kube.api import CANARY_GROUP, CANARY_PLURAL, CANARY_VERSION, JSON_PATCH, MERGE_PATCH, KubeApi
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.observe import Observation
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef
from canary.kube.workloads import (
    config_copy, match_labels, owner_reference, primary_deployment, primary_name, promotion_patch, service_bodies,
    service_matches,
)
from canary.notify.webhooks import WebhookPayload, notify
from canary.routers.base import Router
from canary.telemetry import bind_canary

COMPONENT = "canary-controller"


@dataclass(frozen=True)
class Target:
    """One Canary as the executor needs it for one reconciliation."""

    canary: Mapping[str, Any]
    spec: CanarySpec
    observation: Observation
    router: Router | None

    @property
    def namespace(self) -> str:
        return str(self.canary["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.canary["metadata"]["name"])


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` for the keys ``new`` owns: removed map
    keys become null (merge patch would otherwise keep them), lists are replaced whole. Keys we
    do not own (``status.kopf``) are left alone."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = status_patch(before, value)
            for gone in set(before) - set(value):
                nested[gone] = None
            if nested:
                patch[key] = nested
        elif before != value:
            patch[key] = value
    return patch


class Executor:
    def __init__(self, api: KubeApi, cache: ClusterCache, session: aiohttp.ClientSession) -> None:
        self.api = api
        self.cache = cache
        self.session = session

    async def write_status(self, namespace: str, name: str, old: CanaryStatus, new: CanaryStatus) -> bool:
        """Patch the status subresource when it changed; returns whether anything was written."""
        # Before our first write the object has no status of ours, and a diff against the parsed
        # defaults would leave out every zero (kubectl's WEIGHT column would stay blank).
        before = {} if old == CanaryStatus() else old.to_dict()
        patch = status_patch(before, new.to_dict())
        if not patch:
            return False
        await self.api.call(
            self.api.custom.patch_namespaced_custom_object_status,
            CANARY_GROUP, CANARY_VERSION, namespace, CANARY_PLURAL, name,
            {"status": patch}, _content_type=MERGE_PATCH,
        )
        return True

    async def run(self, target: Target, action: Action, status: CanaryStatus) -> None:
        log = bind_canary(target.namespace, target.name)
        log.info("action", action=type(action).__name__, detail=str(action))
        if isinstance(action, EnsurePrimary):
            await self._ensure_primary(target, action.replicas)
        elif isinstance(action, EnsureServices):
            await self._ensure_services(target)
        elif isinstance(action, PromotePrimary):
            await self._promote(target, action.revision)
        elif isinstance(action, SetRoute):
            await self._set_route(target, action)
        elif isinstance(action, ScaleCanary):
            await self.api.call(
                self.api.apps.patch_namespaced_deployment, target.spec.target_ref.name, target.namespace,
                {"spec": {"replicas": action.replicas}}, _content_type=MERGE_PATCH,
            )
        elif isinstance(action, RestoreTarget):
            await self._restore_target(target)
        elif isinstance(action, Notify):
            self._notify(target, action.hook_type, status)

    # --- workloads ---------------------------------------------------------------------------

    def _target_body(self, target: Target) -> Mapping[str, Any]:
        body = self.cache.get(ObjectKey(Kind.DEPLOYMENT, target.namespace, target.spec.target_ref.name))
        if body is None:
            raise NotFound(f"Deployment {target.namespace}/{target.spec.target_ref.name} vanished", 404)
        return body

    async def _copy_configs(self, target: Target, refs: frozenset[ConfigRef]) -> None:
        owner = owner_reference(target.canary)
        for ref in sorted(refs):
            read: Callable[..., object]
            create: Callable[..., object]
            replace: Callable[..., object]
            if ref.kind == "ConfigMap":
                read, create, replace = (self.api.core.read_namespaced_config_map,
                                         self.api.core.create_namespaced_config_map,
                                         self.api.core.replace_namespaced_config_map)
            else:
                read, create, replace = (self.api.core.read_namespaced_secret,
                                         self.api.core.create_namespaced_secret,
                                         self.api.core.replace_namespaced_secret)
            source = self.api.to_dict(await self.api.call(read, ref.name, target.namespace))
            body = config_copy(source, owner)
            # The copy exists after the first promotion, so replace first: one call per config
            # per promotion, and a create only the first time.
            try:
                await self.api.call(replace, primary_name(ref.name), target.namespace, body)
            except NotFound:
                await self.api.call(create, target.namespace, body)

    async def _ensure_primary(self, target: Target, replicas: int) -> None:
        source = self._target_body(target)
        await self._copy_configs(target, target.observation.configs)
        body = primary_deployment(
            source, owner=owner_reference(target.canary), replicas=replicas,
            revision=target.observation.observed.target.checksum, copied=target.observation.configs,
        )
        try:
            await self.api.call(self.api.apps.create_namespaced_deployment, target.namespace, body)
        except Conflict:
            pass  # created by an earlier attempt; its template is only ever changed by promotion

    async def _promote(self, target: Target, revision: str) -> None:
        if target.observation.observed.target.checksum != revision:
            return  # a newer revision arrived; the next decision restarts the analysis instead
        source = self._target_body(target)
        await self._copy_configs(target, target.observation.configs)
        patch = promotion_patch(source, revision, target.observation.configs)
        # Only our own annotation key is touched: others on the primary (added by people or
        # tools) survive, and the JSON Patch path escapes the "/" in the key.
        key = "/metadata/annotations/" + REVISION_ANNOTATION.replace("~", "~0").replace("/", "~1")
        ops = [
            {"op": "replace", "path": "/spec/template", "value": patch["spec"]["template"]},
            {"op": "add", "path": key, "value": revision},
        ]
        await self.api.call(
            self.api.apps.patch_namespaced_deployment, primary_name(target.spec.target_ref.name), target.namespace,
            ops, _content_type=JSON_PATCH,
        )

    async def _ensure_services(self, target: Target) -> None:
        source = self._target_body(target)
        wanted = service_bodies(target.spec, target.namespace, match_labels(source), owner_reference(target.canary))
        for name, body in wanted.items():
            existing = self.cache.get(ObjectKey(Kind.SERVICE, target.namespace, name))
            if existing is None:
                try:
                    await self.api.call(self.api.core.create_namespaced_service, target.namespace, body)
                    continue
                except Conflict:
                    existing = self.api.to_dict(
                        await self.api.call(self.api.core.read_namespaced_service, name, target.namespace))
            if existing is not None and not service_matches(existing, body):
                # Adopting a Service someone else made: change only the selector and add our
                # port, so their other ports and metadata survive.
                ports = list((existing.get("spec") or {}).get("ports") or [])
                ours = body["spec"]["ports"][0]
                ports = [p for p in ports if p.get("port") != ours["port"]] + [ours]
                # A merge patch merges maps: selector keys we do not set must be nulled, or the
                # Service keeps them, never matches, and is patched again on every pass.
                selector = {**{k: None for k in (existing.get("spec") or {}).get("selector") or {}},
                            **body["spec"]["selector"]}
                await self.api.call(
                    self.api.core.patch_namespaced_service, name, target.namespace,
                    {"spec": {"selector": selector, "ports": ports}}, _content_type=MERGE_PATCH,
                )

    async def _restore_target(self, target: Target) -> None:
        source = self._target_body(target)
        apex = target.spec.service.name
        existing = self.cache.get(ObjectKey(Kind.SERVICE, target.namespace, apex)) or {}
        patch: dict[str, Any] = {"spec": {"selector": match_labels(source)}}
        if (existing.get("metadata") or {}).get("ownerReferences"):
            patch["metadata"] = {"ownerReferences": None}
        try:
            await self.api.call(self.api.core.patch_namespaced_service, apex, target.namespace, patch,
                                _content_type=MERGE_PATCH)
        except NotFound:
            pass
        if target.router is not None:
            res = target.router.resource
            try:
                await self.api.call(self.api.custom.delete_namespaced_custom_object, res.group, res.version,
                                    target.namespace, res.plural, apex)
            except NotFound:
                pass

    # --- routes ------------------------------------------------------------------------------

    async def _set_route(self, target: Target, action: SetRoute) -> None:
        router = target.router
        route_target = target.observation.route_target
        if router is None or route_target is None:
            return
        res = router.resource
        body = router.build(route_target, action.weights)
        existing = self.cache.get(ObjectKey.route(res.group, target.namespace, route_target.apex))
        custom = self.api.custom
        if existing is None:
            try:
                await self.api.call(custom.create_namespaced_custom_object, res.group, res.version,
                                    target.namespace, res.plural, body)
                return
            except Conflict:
                existing = await self.api.get_custom(res.group, res.version, target.namespace, res.plural,
                                                     route_target.apex)
        for attempt in range(2):
            body["metadata"]["resourceVersion"] = (existing or {}).get("metadata", {}).get("resourceVersion")
            try:
                await self.api.call(custom.replace_namespaced_custom_object, res.group, res.version,
                                    target.namespace, res.plural, route_target.apex, body)
                return
            except Conflict:
                if attempt:
                    raise
                existing = await self.api.get_custom(res.group, res.version, target.namespace, res.plural,
                                                     route_target.apex)

    # --- events and notifications ------------------------------------------------------------

    async def record(self, canary: Mapping[str, Any], hooks: Sequence[WebhookSpec], event: Event,
                     status: CanaryStatus) -> None:
        """A Kubernetes Event on the Canary, plus the ``event`` webhooks (fire and forget)."""
        meta = canary["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        log = bind_canary(namespace, name)
        (log.warning if event.warning else log.info)(event.message, reason=event.reason, phase=str(status.phase))
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {"apiVersion": f"{CANARY_GROUP}/{CANARY_VERSION}", "kind": "Canary",
                               "name": name, "namespace": namespace, "uid": meta.get("uid")},
            "reason": event.reason,
            "message": event.message[:1024],
            "type": "Warning" if event.warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.call(self.api.core.create_namespaced_event, namespace, body)
        except Exception as exc:  # noqa: BLE001 - an Event that cannot be posted must not stop a release
            log.warning("event not recorded", reason=event.reason, error=str(exc))
        if hooks:
            payload = WebhookPayload.for_event(
                name=name, namespace=namespace, phase=status.phase or Phase.INITIALIZING,
                checksum=status.last_applied_spec, message=event.message,
                event_type="Warning" if event.warning else "Normal",
            )
            _background(notify(self.session, hooks, payload))

    def _notify(self, target: Target, hook_type: WebhookType, status: CanaryStatus) -> None:
        hooks = target.spec.analysis.hooks(hook_type)
        if hooks:
            payload = WebhookPayload(name=target.name, namespace=target.namespace,
                                     phase=status.phase or Phase.INITIALIZING, checksum=status.last_applied_spec)
            _background(notify(self.session, hooks, payload))


_background_tasks: set[asyncio.Task[None]] = set()


def _background(coro: Any) -> None:
    # Keep a reference: the event loop holds tasks weakly and would collect a pending one.
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)
