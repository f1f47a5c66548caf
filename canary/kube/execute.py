"""Carries out a Decision: the status write first, then the actions, in order.

Every action here is idempotent (create-if-missing, replace-to-desired, scale-to-N), so
running it twice after a crash is harmless; the decision layer re-derives any action that a
crash lost. A failed action raises and stops the rest: later actions in a Decision may depend
on earlier ones (never scale the canary down before traffic has left it).

Every write is conditional on the resourceVersion of the object as the decision observed it
(a create on the object not existing). A refusal (409) raises :class:`StaleWrite`: the view the
decision rested on is out of date, so the caller re-reads that object and decides again; the
same write is never simply retried. The lease fence sits one layer down, in ``KubeApi``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import aiohttp
from kubernetes.client import V1DeleteOptions, V1Preconditions

from canary.domain.actions import (
    Action, EnsurePrimary, EnsurePrimaryScaler, EnsureServices, Event, Notify, PauseTargetScaler, PromotePrimary,
    RestoreTarget, ScaleCanary, SetFinalizer, SetRoute,
)
from canary.domain.event_facts import EventFacts
from canary.domain.spec import CanarySpec, WebhookType
from canary.domain.status import CanaryStatus, Phase
from canary.errors import Conflict, DeliveryError, NotFound, RouterError
from canary.kube.api import (
    CANARY_GROUP, CANARY_PLURAL, CANARY_VERSION, JSON_PATCH, MERGE_PATCH, REVERT_FINALIZER, KubeApi,
)
from canary.kube.alerting import Alerting
from canary.kube.cache import ClusterCache, Kind, ObjectKey, resource_version
from canary.kube.event_series import EventSeries
from canary.kube.events import KubernetesEvents
from canary.kube.observe import Observation, companion_current, companion_key
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef, data_digest
from canary.kube.scalers import KEDA_PAUSED_REPLICAS, SCALER_RESOURCES, primary_scaler, scaler_keys
from canary.kube.workload_kinds.base import WorkloadKind
from canary.kube.workload_kinds.registry import for_cache_kind, workload_kind
from canary.kube.workloads import (
    MANAGED_BY, config_copy, discovered_ports, match_labels, owner_reference, primary_name, service_bodies,
    service_matches,
)
from canary.notify.base import Notice
from canary.notify.event_hooks import EventHook
from canary.notify.outbox import Outbox
from canary.notify.webhooks import WebhookPayload, notify
from canary.routers.base import Companion, RouteResource, Router, RouteTarget
from canary.telemetry import bind_canary

T = TypeVar("T")


class StaleWrite(Conflict):
    """A conditional write was refused: ``key`` changed since it was seen at ``seen``
    (None: it did not exist). Re-read it and decide again."""

    def __init__(self, key: ObjectKey, seen: str | None, cause: Conflict) -> None:
        super().__init__(f"{key.kind} {key.namespace}/{key.name} changed since version {seen or '(absent)'}: {cause}",
                         cause.status)
        self.key = key
        self.seen = seen


def canary_key(canary: Mapping[str, Any]) -> ObjectKey:
    meta = canary["metadata"]
    return ObjectKey(Kind.CANARY, str(meta["namespace"]), str(meta["name"]))


def _rv_patch(version: str | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that the API server applies only to ``version`` (409 otherwise)."""
    meta = dict(patch.get("metadata") or {})
    meta["resourceVersion"] = version
    return {**patch, "metadata": meta}


@dataclass(frozen=True)
class Target:
    """One Canary as the executor needs it for one reconciliation."""

    canary: Mapping[str, Any]
    spec: CanarySpec
    observation: Observation
    router: Router | None
    #: Versions this Decision's own writes produced: a later action on the same object (the
    #: route set, then deleted) is conditional on our write, not on the snapshot before it.
    written: dict[ObjectKey, str | None] = field(default_factory=dict)

    def seen(self, key: ObjectKey) -> str | None:
        return self.written[key] if key in self.written else self.observation.version(key)

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


class _Uncounted:
    def notification_dropped(self, system: str) -> None:
        pass


class Executor:
    def __init__(self, api: KubeApi, cache: ClusterCache, session: aiohttp.ClientSession, *,
                 outbox: Outbox | None = None, alerts: Alerting | None = None) -> None:
        self.api = api
        self.cache = cache
        self.session = session
        self.events = KubernetesEvents(api)
        # Without an outbox of the operator's (tests that only drive actions), drops go uncounted.
        self.outbox = outbox if outbox is not None else Outbox(_Uncounted())
        self.alerts = alerts

    async def write_status(self, canary: Mapping[str, Any], old: CanaryStatus,
                           new: CanaryStatus) -> Mapping[str, Any] | None:
        """Patch the status subresource when it changed, only if the Canary is still at the
        version ``old`` was read from; returns the stored object, or None when nothing changed."""
        # Before our first write the object has no status of ours, and a diff against the parsed
        # defaults would leave out every zero (kubectl's WEIGHT column would stay blank).
        before = {} if old == CanaryStatus() else old.to_dict()
        patch = status_patch(before, new.to_dict())
        if not patch:
            return None
        key = canary_key(canary)
        version = canary["metadata"].get("resourceVersion")
        try:
            stored = await self.api.call(
                self.api.custom.patch_namespaced_custom_object_status,
                CANARY_GROUP, CANARY_VERSION, key.namespace, CANARY_PLURAL, key.name,
                _rv_patch(version, {"status": patch}), _content_type=MERGE_PATCH,
            )
        except Conflict as exc:
            raise StaleWrite(key, version, exc) from exc
        return self.api.to_dict(stored)

    async def set_finalizer(self, canary: Mapping[str, Any], seen: str | None, present: bool) -> Mapping[str, Any]:
        """Add or remove our finalizer, keeping everyone else's, on the Canary as seen at ``seen``."""
        key = canary_key(canary)
        others = [f for f in (canary["metadata"].get("finalizers") or []) if f != REVERT_FINALIZER]
        ops = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": seen},
            {"op": "add", "path": "/metadata/finalizers", "value": others + ([REVERT_FINALIZER] if present else [])},
        ]
        try:
            stored = await self.api.call(self.api.custom.patch_namespaced_custom_object, CANARY_GROUP,
                                         CANARY_VERSION, key.namespace, CANARY_PLURAL, key.name, ops,
                                         _content_type=JSON_PATCH)
        except Conflict as exc:
            raise StaleWrite(key, seen, exc) from exc
        return self.api.to_dict(stored)

    async def read_current(self, key: ObjectKey, router: Router | None) -> Mapping[str, Any] | None:
        """The object as the API server has it now (None: gone), after a write was refused."""
        ns, name = key.namespace, key.name
        try:
            if key.kind is Kind.CANARY:
                return await self.api.get_custom(CANARY_GROUP, CANARY_VERSION, ns, CANARY_PLURAL, name)
            if (workload := for_cache_kind(key.kind)) is not None:
                return self.api.to_dict(await workload.read(self.api, ns, name))
            if key.kind is Kind.SERVICE:
                return self.api.to_dict(await self.api.call(self.api.core.read_namespaced_service, name, ns))
            if key.kind is Kind.CONFIG_MAP:
                return self.api.to_dict(await self.api.call(self.api.core.read_namespaced_config_map, name, ns))
            if key.kind is Kind.SECRET:
                return self.api.to_dict(await self.api.call(self.api.core.read_namespaced_secret, name, ns))
            scaler = next((r for r in SCALER_RESOURCES.values() if r.kind is key.kind), None)
            if scaler is not None:
                return await self.api.get_custom(scaler.group, scaler.version, ns, scaler.plural, name)
            if key.kind is Kind.ROUTE and router is not None:
                group, _, plain = name.partition("/")
                res = next((r for r in (router.resource, *router.companion_resources)
                            if r is not None and r.group == group), None)
                if res is not None:
                    return await self.api.get_custom(res.group, res.version, ns, res.plural, plain)
        except NotFound:
            return None
        raise LookupError(f"cannot re-read {key}")

    async def run(self, target: Target, action: Action, status: CanaryStatus) -> None:
        log = bind_canary(target.namespace, target.name)
        log.info("action", action=type(action).__name__, detail=str(action))
        if isinstance(action, EnsurePrimary):
            await self._ensure_primary(target, action.replicas)
        elif isinstance(action, EnsurePrimaryScaler):
            await self._ensure_primary_scaler(target)
        elif isinstance(action, EnsureServices):
            await self._ensure_services(target)
        elif isinstance(action, PromotePrimary):
            await self._promote(target, action.revision)
        elif isinstance(action, SetRoute):
            await self._set_route(target, action, status)
        elif isinstance(action, ScaleCanary):
            key = self._target_key(target)
            version = target.seen(key)
            workload = self._workload(target)
            await self._conditional(target, key, version, workload.patch(
                self.api, key.namespace, key.name,
                _rv_patch(version, workload.scale_patch(action.replicas)), MERGE_PATCH,
            ))
        elif isinstance(action, PauseTargetScaler):
            await self._pause_target_scaler(target, action.paused)
        elif isinstance(action, RestoreTarget):
            await self._restore_target(target)
        elif isinstance(action, SetFinalizer):
            key = canary_key(target.canary)
            stored = await self.set_finalizer(target.canary, target.seen(key), action.present)
            target.written[key] = resource_version(stored)
        elif isinstance(action, Notify):
            self._notify(target, action.hook_type, status)

    async def _conditional(self, target: Target, key: ObjectKey, seen: str | None,
                           write: Awaitable[object]) -> Mapping[str, Any] | None:
        """Performs ``write``; returns the object as the API server stored it (None: no body)."""
        try:
            result = await write
        except Conflict as exc:
            raise StaleWrite(key, seen, exc) from exc
        stored = self.api.to_dict(result) if result is not None else None
        target.written[key] = resource_version(stored) if stored is not None else None
        if stored is not None and stored.get("kind") != "Status":
            # The next pass must see what this one wrote, not wait for the watch to bring it:
            # a pass woken before that (by its own status write's echo) would decide from the
            # object as it was, repeat the write on the old version and be refused.
            self.cache.refresh(key, stored, seen)
        return stored

    # --- workloads ---------------------------------------------------------------------------

    @staticmethod
    def _workload(target: Target) -> WorkloadKind:
        return workload_kind(target.spec.target_ref.kind)

    def _target_key(self, target: Target) -> ObjectKey:
        return ObjectKey(self._workload(target).kind, target.namespace, target.spec.target_ref.name)

    def _target_body(self, target: Target) -> Mapping[str, Any]:
        body = target.observation.body(self._target_key(target))
        if body is None:
            raise NotFound(f"{target.spec.target_ref.kind} {target.namespace}/{target.spec.target_ref.name} "
                           "was not observed", 404)
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
            source_key = ObjectKey.config(target.namespace, ref)
            source = self.api.to_dict(await self.api.call(read, ref.name, target.namespace))
            if data_digest(source) != target.observation.config_digests.get(ref):
                # Changed since the decision: that is a new revision, never one to promote.
                raise StaleWrite(source_key, self.cache.version(source_key),
                                 Conflict(f"{ref.kind} {ref.name} changed since it was observed", 409))
            body = config_copy(source, owner)
            copy_key = ObjectKey.config(target.namespace, ConfigRef(ref.kind, primary_name(ref.name)))
            seen = self.cache.version(copy_key)
            # The copy exists after the first promotion, so replace first: one call per config
            # per promotion, and a create only the first time. Both are conditional: the replace
            # on the version cached, the create on there being none.
            if seen is not None:
                body["metadata"]["resourceVersion"] = seen
                try:
                    await self._conditional(target, copy_key, seen,
                                            self.api.call(replace, copy_key.name, target.namespace, body))
                    continue
                except NotFound:
                    body["metadata"].pop("resourceVersion", None)
            await self._conditional(target, copy_key, seen, self.api.call(create, target.namespace, body))

    async def _ensure_primary(self, target: Target, replicas: int) -> None:
        source = self._target_body(target)
        await self._copy_configs(target, target.observation.configs)
        workload = self._workload(target)
        body = workload.primary_body(
            source, owner=owner_reference(target.canary), replicas=replicas,
            revision=target.observation.observed.target.checksum, copied=target.observation.configs,
        )
        key = ObjectKey(workload.kind, target.namespace, body["metadata"]["name"])
        await self._conditional(target, key, None, workload.create(self.api, target.namespace, body))

    async def _ensure_primary_scaler(self, target: Target) -> None:
        """Create the primary's copy of the target's scaler, or replace its spec with the copy's."""
        ref = target.spec.autoscaler_ref
        if ref is None:
            return
        source_key, key = scaler_keys(target.namespace, ref)
        source = target.observation.body(source_key)
        if source is None:
            raise NotFound(f"{ref.kind.value} {target.namespace}/{ref.name} was not observed", 404)
        body = primary_scaler(source, ref, target.spec.target_ref.name, owner_reference(target.canary))
        res = SCALER_RESOURCES[ref.kind]
        seen = target.seen(key)
        custom = self.api.custom
        if seen is None:
            await self._conditional(target, key, None, self.api.call(
                custom.create_namespaced_custom_object, res.group, res.version, target.namespace, res.plural, body))
            return
        # Only the spec is ours to set: labels and annotations others put on the copy (KEDA
        # records its own) survive. The version precondition makes a changed copy a 409.
        ops = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": seen},
            {"op": "replace", "path": "/spec", "value": body["spec"]},
        ]
        await self._conditional(target, key, seen, self.api.call(
            custom.patch_namespaced_custom_object, res.group, res.version, target.namespace, res.plural, key.name,
            ops, _content_type=JSON_PATCH))

    async def _pause_target_scaler(self, target: Target, paused: bool) -> None:
        """KEDA's paused-replicas annotation on the target's ScaledObject: "0" holds the canary
        at zero, its removal lets KEDA scale it again. Nothing else of the object is touched."""
        ref = target.spec.autoscaler_ref
        if ref is None:
            return
        key, _copy = scaler_keys(target.namespace, ref)
        res = SCALER_RESOURCES[ref.kind]
        seen = target.seen(key)
        if seen is None:  # never an unconditional write to someone else's object
            raise NotFound(f"{ref.kind.value} {target.namespace}/{ref.name} was not observed", 404)
        patch = _rv_patch(seen, {"metadata": {"annotations": {KEDA_PAUSED_REPLICAS: "0" if paused else None}}})
        await self._conditional(target, key, seen, self.api.call(
            self.api.custom.patch_namespaced_custom_object, res.group, res.version, target.namespace, res.plural,
            key.name, patch, _content_type=MERGE_PATCH))

    async def _promote(self, target: Target, revision: str) -> None:
        if target.observation.observed.target.checksum != revision:
            return  # a newer revision arrived; the next decision restarts the analysis instead
        source = self._target_body(target)
        await self._copy_configs(target, target.observation.configs)
        workload = self._workload(target)
        patch = workload.promotion_patch(source, revision, target.observation.configs)
        # Only our own annotation key is touched: others on the primary (added by people or
        # tools) survive, and the JSON Patch path escapes the "/" in the key.
        key = "/metadata/annotations/" + REVISION_ANNOTATION.replace("~", "~0").replace("/", "~1")
        primary = ObjectKey(workload.kind, target.namespace, primary_name(target.spec.target_ref.name))
        seen = target.seen(primary)
        # Replacing resourceVersion with the one observed makes the API server refuse the patch
        # (409) when the primary changed since: the same precondition a merge patch carries.
        ops = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": seen},
            {"op": "replace", "path": "/spec/template", "value": patch["spec"]["template"]},
            {"op": "add", "path": key, "value": revision},
        ]
        await self._conditional(target, primary, seen,
                                workload.patch(self.api, target.namespace, primary.name, ops, JSON_PATCH))

    async def _ensure_services(self, target: Target) -> None:
        source = self._target_body(target)
        wanted = service_bodies(target.spec, target.namespace, match_labels(source), owner_reference(target.canary),
                                discovered_ports(target.spec, source))
        for name, body in wanted.items():
            key = ObjectKey(Kind.SERVICE, target.namespace, name)
            existing = target.observation.body(key)
            if existing is None:
                await self._conditional(target, key, None, self.api.call(self.api.core.create_namespaced_service,
                                                                 target.namespace, body))
                continue
            if not service_matches(existing, body):
                # Adopting a Service someone else made: change only the selector and add our
                # port, so their other ports and metadata survive.
                ours = body["spec"]["ports"]
                taken = {p["port"] for p in ours}
                ports = [p for p in (existing.get("spec") or {}).get("ports") or [] if p.get("port") not in taken] + ours
                # A merge patch merges maps: selector keys we do not set must be nulled, or the
                # Service keeps them, never matches, and is patched again on every pass.
                selector = {**{k: None for k in (existing.get("spec") or {}).get("selector") or {}},
                            **body["spec"]["selector"]}
                # The Canary's own labels and annotations; an adopted Service is not marked as ours.
                meta = {part: {k: v for k, v in body["metadata"][part].items() if k not in MANAGED_BY}
                        for part in ("labels", "annotations") if body["metadata"].get(part)}
                seen = target.seen(key)
                await self._conditional(target, key, seen, self.api.call(
                    self.api.core.patch_namespaced_service, name, target.namespace,
                    _rv_patch(seen, {"metadata": meta, "spec": {"selector": selector, "ports": ports}}),
                    _content_type=MERGE_PATCH,
                ))

    async def _restore_target(self, target: Target) -> None:
        source = self._target_body(target)
        apex = target.spec.service.name
        apex_key = ObjectKey(Kind.SERVICE, target.namespace, apex)
        existing = target.observation.body(apex_key)
        if existing is not None:
            patch: dict[str, Any] = {"spec": {"selector": match_labels(source)}}
            if (existing.get("metadata") or {}).get("ownerReferences"):
                patch["metadata"] = {"ownerReferences": None}
            seen = target.seen(apex_key)
            try:
                await self._conditional(target, apex_key, seen, self.api.call(
                    self.api.core.patch_namespaced_service, apex, target.namespace, _rv_patch(seen, patch),
                    _content_type=MERGE_PATCH))
            except NotFound:
                pass
        if target.router is not None and target.router.resource is not None:
            res = target.router.resource
            route_key = ObjectKey.route(res.group, target.namespace, apex)
            seen = target.seen(route_key)
            if seen is None:
                return
            try:
                await self._conditional(target, route_key, seen, self.api.call(
                    self.api.custom.delete_namespaced_custom_object, res.group, res.version, target.namespace,
                    res.plural, apex, body=V1DeleteOptions(preconditions=V1Preconditions(resource_version=seen))))
            except NotFound:
                pass

    # --- routes ------------------------------------------------------------------------------

    async def _set_route(self, target: Target, action: SetRoute, status: CanaryStatus) -> None:
        router = target.router
        route_target = target.observation.route_target
        # A router without a route object (provider kubernetes) routes by the apex Service's
        # selector, which EnsureServices and RestoreTarget set: there is nothing to write here.
        if router is None or router.resource is None or route_target is None:
            return
        # The revision of the status just written, not of the one observed: a decision that
        # starts a run and gives the canary traffic at once must set the new run's cookie.
        route_target = replace(route_target, revision=status.last_applied_spec)
        res = router.resource
        body = router.build(route_target, action.weights)
        # Before the route: a route naming an object not there yet would route nothing for a moment.
        for companion in router.companions(route_target):
            await self._set_companion(target, companion)
        key = ObjectKey.route(res.group, target.namespace, route_target.apex)
        stored = await self._create_or_replace(target, key, res, body)
        self._check_stored_route(router, res, route_target, action, stored)

    async def _create_or_replace(self, target: Target, key: ObjectKey, res: RouteResource,
                                 body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Create the object when none was observed, else replace the version observed (409 if it moved)."""
        seen = target.seen(key)
        custom = self.api.custom
        if seen is None:
            return await self._conditional(target, key, None, self.api.call(
                custom.create_namespaced_custom_object, res.group, res.version, target.namespace, res.plural, body))
        versioned = {**body, "metadata": {**body["metadata"], "resourceVersion": seen}}
        return await self._conditional(target, key, seen, self.api.call(
            custom.replace_namespaced_custom_object, res.group, res.version, target.namespace, res.plural,
            body["metadata"]["name"], versioned))

    async def _set_companion(self, target: Target, companion: Companion) -> None:
        """Create the companion, or replace it when it is not as built; fenced like the route."""
        key = companion_key(target.namespace, companion)
        # Companions do not depend on the weights: one written by this Decision already is as built.
        if key in target.written or companion_current(companion, target.observation.body(key)):
            return
        res = companion.resource
        stored = await self._create_or_replace(target, key, res, companion.body)
        if stored is not None and not companion_current(companion, stored):
            raise RouterError(
                f"the API server did not store the {res.kind} {target.namespace}/{companion.name} as written: its "
                f"{res.plural}.{res.group} CRD dropped or changed a field. Upgrade the CRD to {res.api_version}")

    @staticmethod
    def _check_stored_route(router: Router, res: RouteResource, route_target: RouteTarget, action: SetRoute,
                            stored: Mapping[str, Any] | None) -> None:
        """A route the API server stores differently from what was written (a CRD older than the
        field, which prunes it) would read back as someone else's on every pass, and each
        rewrite would wake the next: fail the pass instead, with back-off and a message."""
        if stored is None or router.read_weights(route_target, stored) == action.weights:
            return
        raise RouterError(
            f"the API server did not store the {res.kind} {route_target.namespace}/{route_target.apex} as written "
            f"(routing {action.weights}): its {res.plural}.{res.group} CRD dropped or changed a field, most likely "
            "one it is too old to know (spec.analysis.mirrorWeight needs Gateway API v1.3 or later). Upgrade the "
            "CRDs or remove the option"
        )

    # --- events and notifications ------------------------------------------------------------

    async def record(self, canary: Mapping[str, Any], spec: CanarySpec | None, event: Event,
                     status: CanaryStatus, series: EventSeries | None = None) -> None:
        """Tell every notifier about ``event``: the Kubernetes Event now, in order with the pass's
        other writes; the ``event`` webhooks and chat alerts through the outbox, never waited on.
        With the Canary's ``series``, a repeat of its last Event is counted into that Event
        (written by :meth:`flush_events`) instead of becoming a new one; the webhooks and alerts
        hear every occurrence, as before."""
        meta = canary["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        log = bind_canary(namespace, name)
        (log.warning if event.warning else log.info)(event.message, reason=event.reason, phase=str(status.phase))
        notice = Notice(namespace=namespace, name=name, reason=event.reason, message=event.message,
                        warning=event.warning, facts=EventFacts.of(status), time=datetime.now(timezone.utc),
                        uid=meta.get("uid"))
        try:
            if series is None:
                await self.events.post(notice)
            else:
                await series.record(self.events, notice)
        except DeliveryError as exc:  # an Event that cannot be posted must not stop a release
            log.warning("event not recorded", reason=event.reason, error=str(exc))
        if spec is None:
            return
        for hook in spec.analysis.hooks(WebhookType.EVENT):
            self.outbox.submit(EventHook(self.session, hook), notice)
        if self.alerts is not None:
            self.alerts.alert(spec, notice)

    async def flush_events(self, canary: Mapping[str, Any], series: EventSeries) -> None:
        """Write the repeats ``series`` counted into their Event (one patch)."""
        try:
            await series.flush(self.events)
        except DeliveryError as exc:  # as in record: the count is lost, not the pass
            meta = canary["metadata"]
            bind_canary(str(meta["namespace"]), str(meta["name"])).warning("event count not recorded", error=str(exc))

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
