"""Which Gateway API features a Canary's HTTPRoute needs, and whether the Gateways it attaches
to say they have them.

An implementation meets a rule it cannot carry out in its own way, and some ways break all of
the rule's traffic: Traefik v3.6 answers every request of a rule carrying a ``RequestMirror``
filter with 500. Each GatewayClass publishes the features its implementation supports in
``status.supportedFeatures`` (Gateway API v1.2+: a list of ``{name}``; v1.1: a list of
names), so the controller refuses a Canary whose route would need a feature a class does not
list, before writing anything.

Core features are supported by every conformant implementation and are not checked. A class
that publishes no features at all (older implementations) says nothing, and is not refused:
unknown is not unsupported. Every function here is pure; the Kubernetes layer reads the
Gateways and GatewayClasses and hands them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from canary.domain.observed import Problem
from canary.domain.route_spec import ParentRef
from canary.routers.options import RouteOptions

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_KIND = "Gateway"
REASON = "GatewayFeatureUnsupported"

# Gateway API v1.4 extended HTTPRoute feature names (sigs.k8s.io/gateway-api pkg/features).
REQUEST_MIRROR = "HTTPRouteRequestMirror"
REQUEST_PERCENTAGE_MIRROR = "HTTPRouteRequestPercentageMirror"
REQUEST_TIMEOUT = "HTTPRouteRequestTimeout"
BACKEND_TIMEOUT = "HTTPRouteBackendTimeout"
PATH_REWRITE = "HTTPRoutePathRewrite"
HOST_REWRITE = "HTTPRouteHostRewrite"
QUERY_PARAM_MATCHING = "HTTPRouteQueryParamMatching"
RESPONSE_HEADER_MODIFICATION = "HTTPRouteResponseHeaderModification"
PARENT_REF_PORT = "HTTPRouteParentRefPort"


@dataclass(frozen=True)
class FeatureNeed:
    """One extended feature the route needs because of one Canary field."""

    field: str
    feature: str


@dataclass(frozen=True)
class GatewaySupport:
    """What one Gateway's class says it supports. ``features`` is ``None`` when the class
    publishes none (unknown, so never refused)."""

    namespace: str
    name: str
    class_name: str
    controller: str
    features: frozenset[str] | None


def needed_features(options: RouteOptions) -> tuple[FeatureNeed, ...]:
    """The extended features the HTTPRoute written for ``options`` uses, each with the field
    asking for it, in spec order. Core features (weights, header matches, request header
    changes, hostnames, sectionName) are left out: every implementation has them."""
    needs: list[FeatureNeed] = []
    for index, ref in enumerate(options.parent_refs):
        if ref.port is not None and _is_gateway(ref):
            needs.append(FeatureNeed(f"spec.service.gatewayRefs[{index}].port", PARENT_REF_PORT))
    if options.timeout is not None:
        needs.append(FeatureNeed("spec.service.timeout", REQUEST_TIMEOUT))
    if options.backend_timeout is not None:
        needs.append(FeatureNeed("spec.service.backendTimeout", BACKEND_TIMEOUT))
    if options.headers is not None and not options.headers.response.empty:
        needs.append(FeatureNeed("spec.service.headers.response", RESPONSE_HEADER_MODIFICATION))
    if options.rewrite is not None and options.rewrite.uri is not None:
        needs.append(FeatureNeed("spec.service.rewrite.uri", PATH_REWRITE))
    if options.rewrite is not None and options.rewrite.authority is not None:
        needs.append(FeatureNeed("spec.service.rewrite.authority", HOST_REWRITE))
    for index, match in enumerate(options.match):
        if match.query_params:
            needs.append(FeatureNeed(f"spec.analysis.match[{index}].queryParams", QUERY_PARAM_MATCHING))
    if options.mirror:
        needs.append(FeatureNeed("spec.analysis.mirror", REQUEST_MIRROR))
        # The router writes a percentage only below 100 (see httproute_rules.mirror_filter).
        if options.mirror_weight is not None and options.mirror_weight < 100:
            needs.append(FeatureNeed("spec.analysis.mirrorWeight", REQUEST_PERCENTAGE_MIRROR))
    if options.session_affinity is not None:
        # Each backend's responses set its cookie with a ResponseHeaderModifier filter.
        needs.append(FeatureNeed("spec.analysis.sessionAffinity", RESPONSE_HEADER_MODIFICATION))
    return tuple(needs)


def gateways_to_check(options: RouteOptions, namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of each Gateway whose class must be read for ``options``: none when
    the route needs no extended feature (most Canaries, so no API call), or attaches to no
    Gateway (GAMMA: a Service's mesh publishes no class)."""
    if not needed_features(options):
        return ()
    return tuple(dict.fromkeys((ref.namespace or namespace, ref.name) for ref in options.parent_refs
                               if _is_gateway(ref)))


def supported_features(gateway_class: Mapping[str, object]) -> frozenset[str] | None:
    """The feature names a GatewayClass publishes, from either shape of
    ``status.supportedFeatures``; ``None`` when it publishes none (absent or empty)."""
    status = gateway_class.get("status")
    listed = status.get("supportedFeatures") if isinstance(status, Mapping) else None
    if not isinstance(listed, list):
        return None
    names: set[str] = set()
    for item in listed:
        if isinstance(item, str):
            names.add(item)  # Gateway API v1.1
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            names.add(str(item["name"]))  # v1.2 and later
    return frozenset(names) or None


def gateway_features_problem(options: RouteOptions, gateways: Sequence[GatewaySupport]) -> Problem | None:
    """Why the Canary's route cannot go to ``gateways``, or ``None``: the first Gateway whose
    class publishes features and lacks one the route needs. The Problem names the first field,
    and the message every field that class cannot carry out."""
    needs = needed_features(options)
    for gateway in gateways:
        if gateway.features is None:
            continue
        missing = [need for need in needs if need.feature not in gateway.features]
        if missing:
            return Problem(missing[0].field, REASON, _message(gateway, missing))
    return None


def _message(gateway: GatewaySupport, missing: Sequence[FeatureNeed]) -> str:
    fields = ", ".join(dict.fromkeys(need.field for need in missing))
    features = ", ".join(dict.fromkeys(need.feature for need in missing))
    needs = "; ".join(f"{need.field} needs {need.feature}" for need in missing)
    return (
        f"{needs}, and Gateway {gateway.namespace}/{gateway.name} (spec.service.gatewayRefs) has GatewayClass "
        f"{gateway.class_name!r} (controller {gateway.controller or 'unknown'}), whose status.supportedFeatures "
        f"does not list {'it' if len(missing) == 1 else 'them'}. An implementation may fail every request of a "
        f"route rule it cannot carry out (Traefik answers 500), so no route is written for this Canary. Remove "
        f"{fields}, or use a Gateway whose class supports {features}"
    )


def _is_gateway(ref: ParentRef) -> bool:
    return ref.group == GATEWAY_GROUP and ref.kind == GATEWAY_KIND
