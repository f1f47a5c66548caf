"""Builds the ``Observed`` facts for one Canary from the watch caches: no API calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.domain.observed import Observed, Problem, RouteState, ScalerState, WorkloadState
from canary.domain.spec import CanarySpec
from canary.domain.weights import ALL_PRIMARY
from canary.kube.api import REVERT_FINALIZER
from canary.kube.cache import ClusterCache, Kind, ObjectKey, resource_version
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef, config_refs, revision_of
from canary.kube.scalers import held_at_zero, pausable, primary_scaler, scaler_in_sync, scaler_keys
from canary.kube.workload_kinds.registry import workload_kind
from canary.kube.workloads import (
    discovered_ports, match_labels, owner_reference, primary_name, service_bodies, service_matches,
)
from canary.routers.base import Companion, RouteOptions, Router, RouteTarget


@dataclass(frozen=True)
class Observation:
    observed: Observed
    #: Objects whose changes should wake this Canary's reconciler.
    dependencies: frozenset[ObjectKey]
    route_target: RouteTarget | None
    #: ConfigMaps/Secrets the target uses that exist (copied for the primary on promotion).
    configs: frozenset[ConfigRef]
    #: The cached objects this observation was made from (workloads, Services, route). Writes
    #: are based on these and conditional on their resourceVersions: a write must never rest on
    #: a view newer, or older, than the one the decision saw.
    bodies: Mapping[ObjectKey, Mapping[str, Any]] = field(default_factory=dict)
    #: Digests of the ``configs`` as observed; a promotion copies only data with these digests.
    config_digests: Mapping[ConfigRef, str] = field(default_factory=dict)

    def body(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self.bodies.get(key)

    def version(self, key: ObjectKey) -> str | None:
        body = self.bodies.get(key)
        return None if body is None else resource_version(body)


def companion_key(namespace: str, companion: Companion) -> ObjectKey:
    return ObjectKey.route(companion.resource.group, namespace, companion.name)


def companion_current(companion: Companion, found: Mapping[str, Any] | None) -> bool:
    """Whether ``found`` (the cluster's copy) routes what ``companion`` was built to."""
    return found is not None and found.get("spec") == companion.body.get("spec")


def route_target(canary: Mapping[str, Any], spec: CanarySpec) -> RouteTarget:
    meta = canary["metadata"]
    apex = spec.service.name
    return RouteTarget(
        namespace=meta["namespace"], apex=apex, primary=primary_name(apex), canary=f"{apex}-canary",
        port=spec.service.port, owner=owner_reference(canary),
        labels={"app.kubernetes.io/managed-by": "canary"},
        options=RouteOptions.of(spec),
        revision=str((canary.get("status") or {}).get("lastAppliedSpec") or ""),
    )


def observe(canary: Mapping[str, Any], spec: CanarySpec, cache: ClusterCache, router: Router | None,
            router_problem: Problem | None = None) -> Observation:
    meta = canary["metadata"]
    namespace = meta["namespace"]
    target_name = spec.target_ref.name
    workload = workload_kind(spec.target_ref.kind)
    target_key = ObjectKey(workload.kind, namespace, target_name)
    primary_key = ObjectKey(workload.kind, namespace, primary_name(target_name))
    rt = route_target(canary, spec)
    deps: set[ObjectKey] = {target_key, primary_key}
    deps.update(ObjectKey(Kind.SERVICE, namespace, name) for name in (rt.apex, rt.primary, rt.canary))
    problem = router_problem

    bodies: dict[ObjectKey, Mapping[str, Any]] = {ObjectKey(Kind.CANARY, namespace, meta["name"]): canary}
    target_body = cache.get(target_key)
    target = WorkloadState()
    configs: frozenset[ConfigRef] = frozenset()
    digests: dict[ConfigRef, str | None] = {}
    services_ready = False
    apex_selects_primary = False
    if target_body is None:
        # A spec the router cannot carry out is reported first: creating the target would not help.
        problem = problem or Problem("spec.targetRef.name", "TargetNotFound",
                          f"{workload.kind.value} {target_name!r} not found in namespace {namespace!r}: create it or "
                          "correct spec.targetRef.name")
    else:
        template = workload.pod_template(target_body)
        refs = config_refs(template.get("spec") or {})
        digests = {ref: cache.digest(ObjectKey.config(namespace, ref)) for ref in refs}
        deps.update(ObjectKey.config(namespace, ref) for ref in refs)
        configs = frozenset(ref for ref, digest in digests.items() if digest is not None)
        ready, message = workload.readiness(target_body, spec.analysis.canary_ready_threshold)
        target = WorkloadState(
            exists=True, checksum=revision_of(template, digests), ready=ready,
            replicas=workload.replicas(target_body), message=message,
        )
        bodies[target_key] = target_body
        wanted = service_bodies(spec, namespace, match_labels(target_body), owner_reference(canary),
                                discovered_ports(spec, target_body))
        for name in wanted:
            if (have := cache.get(ObjectKey(Kind.SERVICE, namespace, name))) is not None:
                bodies[ObjectKey(Kind.SERVICE, namespace, name)] = have
        services_ready = all(
            (have := bodies.get(ObjectKey(Kind.SERVICE, namespace, name))) is not None and service_matches(have, body)
            for name, body in wanted.items()
        )
        apex_body = bodies.get(ObjectKey(Kind.SERVICE, namespace, rt.apex))
        apex_selects_primary = apex_body is not None and service_matches(apex_body, wanted[rt.apex])

    primary_body = cache.get(primary_key)
    primary = WorkloadState()
    if primary_body is not None:
        bodies[primary_key] = primary_body
        ready, message = workload.readiness(primary_body, spec.analysis.primary_ready_threshold)
        primary = WorkloadState(
            exists=True,
            checksum=((primary_body.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, ""),
            ready=ready, replicas=workload.replicas(primary_body), message=message,
        )

    route = RouteState()
    route_resource = router.resource if router is not None else None
    if router is not None and route_resource is None:
        # No route object (provider kubernetes): the apex Service is the route, sending all
        # traffic to the primary while it selects the primary's pods, and nothing once handed back.
        if apex_selects_primary:
            route = RouteState(exists=True, weights=ALL_PRIMARY)
    elif router is not None and route_resource is not None:
        route_key = ObjectKey.route(route_resource.group, namespace, rt.apex)
        deps.add(route_key)
        found = cache.get(route_key)
        if found is not None:
            bodies[route_key] = found
            route = RouteState(exists=True, weights=router.read_weights(rt, found))
        # The route names its companions: while one is missing or not as built, the route does
        # not route what its weights say, so it reads as unknown and is set again (companions first).
        for companion in router.companions(rt):
            key = companion_key(namespace, companion)
            deps.add(key)
            have = cache.get(key)
            if have is not None:
                bodies[key] = have
            if route.exists and not companion_current(companion, have):
                route = RouteState(exists=True, weights=None)

    scaler: ScalerState | None = None
    if spec.autoscaler_ref is not None:
        scaler, scaler_problem = _observe_scaler(canary, spec, cache, bodies, deps)
        problem = problem or scaler_problem

    for index, metric in enumerate(spec.analysis.metrics):
        if metric.template_ref is None:
            continue
        tpl_key = ObjectKey(Kind.METRIC_TEMPLATE, metric.template_ref.namespace or namespace, metric.template_ref.name)
        deps.add(tpl_key)
        if problem is None and not cache.has(tpl_key):
            problem = Problem(
                f"spec.analysis.metrics[{index}].templateRef.name", "MetricTemplateNotFound",
                f"MetricTemplate {tpl_key.namespace}/{tpl_key.name} not found: create it or correct "
                f"spec.analysis.metrics[{index}].templateRef",
            )

    observed = Observed(
        generation=int(meta.get("generation") or 0),
        annotations=dict(meta.get("annotations") or {}),
        target=target,
        primary=primary,
        services_ready=services_ready,
        route=route,
        scaler=scaler,
        deleting=bool(meta.get("deletionTimestamp")),
        finalizer=REVERT_FINALIZER in (meta.get("finalizers") or ()),
        problem=problem,
    )
    config_digests = {ref: digest for ref, digest in digests.items() if digest is not None} if target_body else {}
    return Observation(observed=observed, dependencies=frozenset(deps), route_target=rt, configs=configs,
                       bodies=bodies, config_digests=config_digests)


def _observe_scaler(
    canary: Mapping[str, Any], spec: CanarySpec, cache: ClusterCache, bodies: dict[ObjectKey, Mapping[str, Any]],
    deps: set[ObjectKey],
) -> tuple[ScalerState, Problem | None]:
    """The target's scaler and the primary's copy; their bodies join ``bodies`` for the writes."""
    ref = spec.autoscaler_ref
    assert ref is not None
    namespace = canary["metadata"]["namespace"]
    target_key, primary_key = scaler_keys(namespace, ref)
    deps.update((target_key, primary_key))
    source, copy_ = cache.get(target_key), cache.get(primary_key)
    if copy_ is not None:
        bodies[primary_key] = copy_
    if source is None:
        return ScalerState(primary_exists=copy_ is not None), Problem(
            "spec.autoscalerRef.name", "AutoscalerNotFound",
            f"{ref.kind.value} {ref.name!r} ({ref.api_version}) not found in namespace {namespace!r}: create it "
            "or correct spec.autoscalerRef")
    bodies[target_key] = source
    in_sync = copy_ is not None and scaler_in_sync(
        copy_, primary_scaler(source, ref, spec.target_ref.name, owner_reference(canary)))
    return ScalerState(target_exists=True, primary_exists=copy_ is not None, primary_in_sync=in_sync,
                       pausable=pausable(ref), target_paused=held_at_zero(source)), None
