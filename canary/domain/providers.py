"""Every value of ``spec.provider``, in one place: which router it means, which mesh's metric
names the builtin checks query, or why it is refused.

Flagger's ``provider`` names a mesh or an ingress; ours names how traffic is split. The values a
Flagger manifest carries are accepted when this controller can do what Flagger did with them
(``linkerd`` and ``osm`` write an SMI ``TrafficSplit``, as Flagger does), and refused with a
message that names the provider and what to use instead when it cannot. The CRD's rules, the
router factory, the CLI's ``--default-provider`` choices and ``canary convert`` all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from canary.errors import SpecError

__all__ = [
    "GATEWAY_API",
    "KUBERNETES",
    "PROVIDERS",
    "REFUSED_PROVIDERS",
    "SMI",
    "SMI_VERSIONS",
    "TRAEFIK",
    "Mesh",
    "Provider",
    "RouterKind",
    "parse_provider",
]

#: TrafficSplit versions, newest first (``smi`` writes the newest one the cluster serves).
SMI_VERSIONS: tuple[str, ...] = ("v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1")
SMI = "smi"
GATEWAY_API = "gatewayapi"
KUBERNETES = "kubernetes"
TRAEFIK = "traefik"


class RouterKind(StrEnum):
    SMI = "smi"
    GATEWAY_API = "gatewayapi"
    #: A weighted Traefik ``TraefikService`` (traefik.io), as Flagger's traefik router writes.
    TRAEFIK = "traefik"
    #: No route object: the apex Service's selector is the route (blue/green only).
    SERVICES = "services"


class Mesh(StrEnum):
    """Whose metric names the builtin checks query."""

    LINKERD = "linkerd"
    ISTIO = "istio"
    OSM = "osm"
    #: A gateway's metrics, per backend Service (``--mesh traefik`` for a gatewayapi Canary
    #: behind a Traefik Gateway).
    TRAEFIK = "traefik"


@dataclass(frozen=True)
class Provider:
    name: str
    router: RouterKind
    #: A pinned TrafficSplit version; ``None``: the newest the cluster serves.
    smi_version: str | None = None
    #: The builtin checks' metric names; ``None``: the controller's ``--mesh`` setting.
    metrics: Mesh | None = None
    #: How this differs from Flagger's value of the same name, for docs and ``canary convert``.
    note: str = ""


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(SMI, RouterKind.SMI, note="the newest TrafficSplit version the cluster serves"),
        *(Provider(f"{SMI}:{v}", RouterKind.SMI, smi_version=v, note=f"TrafficSplit {v}, pinned")
          for v in SMI_VERSIONS),
        Provider(GATEWAY_API, RouterKind.GATEWAY_API, note="a gateway.networking.k8s.io/v1 HTTPRoute"),
        # Flagger spells the Gateway API version into the provider; v1beta1 and v1 are the same
        # stored object, so both mean the v1 HTTPRoute this controller writes.
        Provider(f"{GATEWAY_API}:v1", RouterKind.GATEWAY_API, note="as gatewayapi"),
        Provider(f"{GATEWAY_API}:v1beta1", RouterKind.GATEWAY_API,
                 note="as gatewayapi: the HTTPRoute is written at v1, the same stored object as v1beta1"),
        Provider("linkerd", RouterKind.SMI, metrics=Mesh.LINKERD,
                 note="as in Flagger: an SMI TrafficSplit, builtin checks on Linkerd's metrics"),
        Provider("osm", RouterKind.SMI, metrics=Mesh.OSM,
                 note="as in Flagger: an SMI TrafficSplit, builtin checks on OSM's (Envoy's) metrics"),
        Provider(TRAEFIK, RouterKind.TRAEFIK, metrics=Mesh.TRAEFIK,
                 note="as in Flagger: a weighted traefik.io/v1alpha1 TraefikService named after the apex Service, "
                      "which your IngressRoute references with kind: TraefikService; weights only (no A/B, "
                      "mirroring, session affinity or route options); builtin checks on Traefik's per-service metrics"),
        Provider(KUBERNETES, RouterKind.SERVICES,
                 note="as in Flagger: blue/green only (spec.analysis.iterations); the apex Service selects the "
                      "primary, the canary is reached through <service>-canary, and no route object is written"),
    )
}

_USE_GATEWAY_API = (
    "it implements the Gateway API, so set spec.provider: gatewayapi and spec.service.gatewayRefs to "
    "your Gateway (north-south) or leave gatewayRefs out to attach the HTTPRoute to the Service (mesh)"
)

#: Flagger's values this controller does not serve, with why and what to use instead.
REFUSED_PROVIDERS: dict[str, str] = {
    **{name: f"{what} is not a router this controller drives; {_USE_GATEWAY_API}" for name, what in (
        ("istio", "Istio (VirtualService)"),
        ("contour", "Contour (HTTPProxy)"),
        ("gloo", "Gloo (RouteTable)"),
        ("nginx", "NGINX Ingress (canary annotations)"),
        ("apisix", "APISIX (ApisixRoute)"),
        ("skipper", "Skipper (Ingress annotations)"),
        ("kuma", "Kuma (TrafficRoute)"),
    )},
    "knative": "Knative Serving (Service traffic) is not a router this controller drives, and Knative "
               "revisions are not Deployments it can copy; release Knative Services with Knative's own "
               "traffic split, or run the app as a Deployment behind a Gateway with spec.provider: gatewayapi",
    "appmesh": "AWS App Mesh (VirtualNode/VirtualRouter) is not a router this controller drives, and App Mesh "
               "is discontinued; move to a mesh or gateway that implements the Gateway API and set "
               "spec.provider: gatewayapi",
    "appmesh:v1beta2": "AWS App Mesh is not a router this controller drives, and App Mesh is discontinued; "
                       "move to a mesh or gateway that implements the Gateway API and set spec.provider: gatewayapi",
}


def parse_provider(value: object, path: str = "spec.provider") -> Provider:
    """The provider ``value`` names; :class:`SpecError` naming ``path`` for any other value."""
    allowed = f"allowed values are {', '.join(repr(p) for p in PROVIDERS)}"
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"must be a non-empty string; {allowed}")
    provider = PROVIDERS.get(value)
    if provider is not None:
        return provider
    refused = REFUSED_PROVIDERS.get(value)
    if refused is not None:
        raise SpecError(path, f"{value!r} is refused: {refused}")
    raise SpecError(path, f"{value!r} is not a provider; {allowed}")
