"""Picks the router for a Canary's ``spec.provider``: what the cluster must serve for it, which
route options it can apply, and the SMI version to write.

The provider values and what each means live in :mod:`canary.domain.providers`. The Kubernetes
layer reaches routers only through this module and :mod:`canary.routers.base` (an import
contract says so): it asks :func:`discovery_group` which API group to discover, hands the served
versions to :func:`router_for`, and watches :data:`WATCHED_ROUTES`. Every function is pure, so
each combination is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from canary.domain.observed import Problem
from canary.domain.providers import (
    GATEWAY_API,
    KUBERNETES,
    PROVIDERS,
    SMI,
    SMI_VERSIONS,
    TRAEFIK,
    RouterKind,
    parse_provider,
)
from canary.domain.route_spec import ParentRef
from canary.errors import RouterError, SpecError
from canary.routers import gateway_features, gatewayapi, smi, traefik
from canary.routers.gateway_features import GatewaySupport, gateway_features_problem, supported_features
from canary.routers.base import Router, RouteResource
from canary.routers.gateway_durations import gateway_duration
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.options import RouteOptions
from canary.routers.services import ServicesRouter
from canary.routers.smi import MATCH_FIELD, TrafficSplitRouter
from canary.routers.smi_route_groups import SPECS_VERSION_FOR_SPLIT
from canary.routers.traefik import TraefikServiceRouter

_PINNED_PREFIX = f"{SMI}:"
#: Every kind of object a router may write, companions included; the Kubernetes layer watches all of them.
ROUTE_RESOURCES: tuple[RouteResource, ...] = (
    *(TrafficSplitRouter(v).resource for v in SMI_VERSIONS),
    *(r for v in SMI_VERSIONS for r in TrafficSplitRouter(v).companion_resources),
    HTTPRouteRouter().resource,
    TraefikServiceRouter().resource,
)
#: (group, plural) of every kind of route object, once each: what the Kubernetes layer watches.
WATCHED_ROUTES: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.group, r.plural) for r in ROUTE_RESOURCES))

__all__ = [
    "GATEWAY_API",
    "PROVIDERS",
    "GatewaySupport",
    "ROUTE_RESOURCES",
    "SMI",
    "SMI_VERSIONS",
    "WATCHED_ROUTES",
    "choose_smi_version",
    "companion_groups",
    "discovery_group",
    "gateway_features_problem",
    "gateways_to_check",
    "route_options_problem",
    "router_for",
    "router_options_problem",
    "supported_features",
    "traefik_refusal",
]


def choose_smi_version(served: Collection[str], pinned: str | None) -> str:
    """The TrafficSplit version to write: ``pinned`` if given, else the newest served.

    Raises :class:`SpecError` for a pinned version this controller does not know, and
    :class:`RouterError` when the cluster serves no TrafficSplit version or not the pinned one.
    """
    if pinned is not None and pinned not in SMI_VERSIONS:
        raise SpecError("spec.provider", f"unknown TrafficSplit version {pinned!r}; {_allowed()}")
    if not served:
        raise RouterError(
            "the SMI TrafficSplit CRD (trafficsplits.split.smi-spec.io) is not installed: the cluster "
            "serves no version of split.smi-spec.io. Install your mesh's SMI support (for Linkerd, "
            "`linkerd smi install | kubectl apply -f -` or the linkerd-smi Helm chart), or set "
            f"spec.provider to {GATEWAY_API!r} to route with a Gateway API HTTPRoute"
        )
    usable = [v for v in SMI_VERSIONS if v in served]
    if pinned is not None:
        if pinned in served:
            return pinned
        hint = f"; use {_quoted([SMI, *(_PINNED_PREFIX + v for v in usable)])}" if usable else ""
        raise RouterError(
            f"spec.provider pins TrafficSplit {pinned}, but the cluster serves only "
            f"{_served_list(served)} of split.smi-spec.io{hint}"
        )
    if not usable:
        raise RouterError(
            f"the cluster serves split.smi-spec.io {_served_list(served)}, none of which this "
            f"controller writes ({', '.join(SMI_VERSIONS)}); set spec.provider to {GATEWAY_API!r}"
        )
    return usable[0]


def discovery_group(provider: str) -> str | None:
    """The API group whose served versions :func:`router_for` needs for ``provider`` (``None``:
    none, the router writes only core objects); :class:`SpecError` for a value that is not a provider."""
    kind = parse_provider(provider).router
    if kind is RouterKind.SERVICES:
        return None
    if kind is RouterKind.GATEWAY_API:
        return gatewayapi.GROUP
    if kind is RouterKind.TRAEFIK:
        return traefik.GROUP
    return smi.GROUP


def router_for(provider: str, served_versions: Collection[str]) -> Router:
    """The router for ``spec.provider``, given the versions the cluster serves of
    :func:`discovery_group`; see :func:`choose_smi_version` for the SMI errors."""
    chosen = parse_provider(provider)
    if chosen.router is RouterKind.SERVICES:
        return ServicesRouter()
    if chosen.router is RouterKind.GATEWAY_API:
        if gatewayapi.VERSION not in served_versions:
            raise RouterError(
                f"the cluster does not serve {gatewayapi.PLURAL}.{gatewayapi.GROUP}/{gatewayapi.VERSION}: "
                "install the Gateway API CRDs (v1.1 or later; v1.3 or later for spec.analysis.mirrorWeight), "
                "or set spec.provider to smi"
            )
        return HTTPRouteRouter()
    if chosen.router is RouterKind.TRAEFIK:
        if traefik.VERSION not in served_versions:
            raise RouterError(_traefik_missing(served_versions))
        return TraefikServiceRouter()
    return TrafficSplitRouter(choose_smi_version(served_versions, chosen.smi_version))


def route_options_problem(provider: str, options: RouteOptions) -> Problem | None:
    """Why ``provider``'s router cannot apply the Canary's route options, or ``None``.

    An SMI TrafficSplit has weights and, from v1alpha3 on, ``matches`` naming an HTTPRouteGroup:
    of the options it applies A/B matches on headers (see :func:`router_options_problem` for the
    version), and every other option is refused by name rather than dropped. The Gateway API
    says them all, as long as its format can say the values. ``kubernetes`` writes no route, so
    it applies none of them, and it only does blue/green (``iterations``)."""
    chosen = parse_provider(provider)
    if chosen.router is RouterKind.SERVICES:
        return _services_problem(options)
    if chosen.router is RouterKind.TRAEFIK:
        return _traefik_problem(provider, options)
    if chosen.router is RouterKind.SMI:
        others = tuple(f for f in options.fields if f != MATCH_FIELD)
        if others:
            names = ", ".join(others)
            return Problem(
                others[0], "InvalidSpec",
                f"{names} {'is' if len(others) == 1 else 'are'} applied only with spec.provider: "
                f"{GATEWAY_API} (an HTTPRoute); spec.provider {provider!r} writes an SMI TrafficSplit, which "
                f"carries only weights and A/B header matches. Set spec.provider: {GATEWAY_API}, or remove {names}",
            )
        for index, match in enumerate(options.match):
            if match.query_params:
                field = f"{MATCH_FIELD}[{index}].queryParams"
                return Problem(
                    field, "InvalidSpec",
                    f"{field}: spec.provider {provider!r} does A/B testing with an SMI HTTPRouteGroup, which "
                    f"matches headers (cookies as the cookie header) but not query parameters. Match a header "
                    f"instead, or set spec.provider: {GATEWAY_API}",
                )
        return None
    if options.hosts and all(_is_service(ref) for ref in options.parent_refs):
        return Problem(
            "spec.service.hosts", "InvalidSpec",
            "spec.service.hosts: a route attached to a Service (GAMMA mesh routing, which is what leaving out "
            "spec.service.gatewayRefs means) is chosen by the Service called, and meshes ignore its hostnames; "
            "set spec.service.gatewayRefs to the Gateway that serves these hosts, or remove hosts",
        )
    for field, value in (("spec.service.timeout", options.timeout),
                         ("spec.service.backendTimeout", options.backend_timeout)):
        if value is not None:
            try:
                gateway_duration(value, field)
            except SpecError as exc:
                return Problem(exc.field, "InvalidSpec", str(exc))
    return None


def companion_groups(router: Router, options: RouteOptions) -> tuple[str, ...]:
    """The API groups whose served versions :func:`router_options_problem` needs: those of the
    companions ``router`` writes for these options (none for most Canaries, so no discovery)."""
    if isinstance(router, TrafficSplitRouter) and options.match:
        return tuple(dict.fromkeys(r.group for r in router.companion_resources))
    return ()


def gateways_to_check(router: Router, options: RouteOptions, namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of the Gateways whose GatewayClass :func:`gateway_features_problem`
    needs, for a Canary in ``namespace``: only an HTTPRoute attached to Gateways and using an
    extended feature asks for any (so most Canaries cost no API call)."""
    if not isinstance(router, HTTPRouteRouter):
        return ()
    return gateway_features.gateways_to_check(options, namespace)


def router_options_problem(router: Router, options: RouteOptions,
                           served: Mapping[str, Collection[str]]) -> Problem | None:
    """Why the router chosen for the cluster cannot apply the Canary's options, or ``None``:
    what :func:`route_options_problem` cannot know before the SMI version is chosen. ``served``
    holds the served versions of each group :func:`companion_groups` names."""
    if not isinstance(router, TrafficSplitRouter) or not options.match:
        return None
    if router.version not in SPECS_VERSION_FOR_SPLIT:
        with_matches = tuple(SPECS_VERSION_FOR_SPLIT)  # newest first
        newer = " or ".join(with_matches)
        return Problem(
            MATCH_FIELD, "InvalidSpec",
            f"{MATCH_FIELD}: A/B testing with SMI needs TrafficSplit {newer}, whose spec.matches names an "
            f"HTTPRouteGroup; the TrafficSplit written here is {router.version}, which has no matches. Serve "
            f"split.smi-spec.io {newer} (and pin it with spec.provider: {_PINNED_PREFIX}{with_matches[0]} if "
            f"needed), or set spec.provider: {GATEWAY_API}",
        )
    for res in router.companion_resources:
        if res.version not in served.get(res.group, ()):
            return Problem(
                MATCH_FIELD, "RouterUnavailable",
                f"{MATCH_FIELD}: TrafficSplit {router.version} names its A/B conditions in an {res.kind} "
                f"{res.api_version}, and the cluster does not serve {res.plural}.{res.group}/{res.version}: "
                f"install the SMI Traffic Specs CRD of that version, or set spec.provider: {GATEWAY_API}",
            )
    return None


def _services_problem(options: RouteOptions) -> Problem | None:
    if options.fields:
        names = ", ".join(options.fields)
        return Problem(
            options.fields[0], "InvalidSpec",
            f"{names} {'needs' if len(options.fields) == 1 else 'need'} a route object, and spec.provider "
            f"{KUBERNETES!r} writes none (the apex Service selects the primary; the canary is reached only through "
            f"<service>-canary). Set spec.provider: {GATEWAY_API}, or remove {names}",
        )
    if not options.blue_green:
        field = options.weight_fields[0] if options.weight_fields else "spec.analysis.iterations"
        return Problem(
            field, "InvalidSpec",
            f"{field}: provider {KUBERNETES!r} is blue/green: set iterations (and no stepWeight or stepWeights); "
            f"a weighted split needs a router: set spec.provider: {GATEWAY_API} or smi",
        )
    return None


#: Why each route option has no place in a TraefikService, and what to use instead (a field
#: missing here gets the general message).
_TRAEFIK_INSTEAD: Mapping[str, str] = {
    "spec.analysis.match": "A/B conditions are the IngressRoute's match rule, which is yours, not the "
                           "controller's",
    "spec.analysis.mirror": "Traefik mirrors with a separate mirroring TraefikService, which Flagger's traefik "
                            "router does not write either",
    "spec.analysis.mirrorWeight": "Traefik mirrors with a separate mirroring TraefikService, which Flagger's "
                                  "traefik router does not write either",
    "spec.analysis.sessionAffinity": "Traefik's sticky cookie pins a client to whichever backend served it first, "
                                     "for every release alike, not to the canary of the revision under analysis",
    "spec.service.gatewayRefs": "a TraefikService attaches to nothing: your IngressRoute references it "
                                "(kind: TraefikService, name: the apex Service's name)",
    "spec.service.hosts": "hosts are matched by your IngressRoute's rule (Host(`...`))",
    "spec.service.timeout": "Traefik sets timeouts on its entryPoint (transport.respondingTimeouts) or a "
                            "ServersTransport, not on a TraefikService",
    "spec.service.backendTimeout": "Traefik sets timeouts on its entryPoint (transport.respondingTimeouts) or a "
                                   "ServersTransport, not on a TraefikService",
    "spec.service.headers": "header changes are a Headers middleware on your IngressRoute",
    "spec.service.rewrite": "rewrites are a ReplacePath or Headers middleware on your IngressRoute",
}


def _traefik_problem(provider: str, options: RouteOptions) -> Problem | None:
    """A TraefikService carries weights only: every route option is refused by name."""
    if not options.fields:
        return None
    return Problem(options.fields[0], "InvalidSpec", traefik_refusal(options.fields, provider))


def traefik_refusal(fields: Sequence[str], provider: str = TRAEFIK) -> str:
    """Why ``provider: traefik`` cannot apply these route options (spec paths, the first one
    explained), and what to use instead; ``canary convert`` reports each field with it."""
    names = ", ".join(fields)
    why = _TRAEFIK_INSTEAD.get(fields[0], "a TraefikService has no place for it")
    return (
        f"{names} {'is' if len(fields) == 1 else 'are'} not applied with spec.provider {provider!r}, which "
        f"writes a TraefikService carrying only the weights of the split (as Flagger's traefik router does): "
        f"{why}. Remove {names}, or set spec.provider: {GATEWAY_API} to route with a Gateway API HTTPRoute "
        f"through Traefik's Gateway (spec.service.gatewayRefs), which applies them"
    )


def _traefik_missing(served: Collection[str]) -> str:
    resource = f"{traefik.PLURAL}.{traefik.GROUP}/{traefik.VERSION}"
    found = f" (it serves {traefik.GROUP} {', '.join(sorted(served))})" if served else ""
    return (
        f"spec.provider {TRAEFIK!r} writes a TraefikService, and the cluster does not serve {resource}{found}: "
        "install Traefik's CRDs (Traefik v3, or v2.10 and later, which serve the traefik.io group; "
        "kubernetes-crd-definition-v1.yml from Traefik's docs or its Helm chart's crds), or set spec.provider "
        f"to {GATEWAY_API!r} to route with a Gateway API HTTPRoute through Traefik's Gateway"
    )


def _is_service(ref: ParentRef) -> bool:
    return ref.group == "" and ref.kind == "Service"


def _allowed() -> str:
    return f"allowed values are {_quoted(PROVIDERS)}"


def _quoted(values: Collection[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _served_list(served: Collection[str]) -> str:
    # Known versions newest first, then those this controller does not know, for a stable message.
    known = [v for v in SMI_VERSIONS if v in served]
    return ", ".join(known + sorted(set(served) - set(SMI_VERSIONS)))
