"""Traefik ``TraefikService`` router (``spec.provider: traefik``, Flagger's name and meaning).

The controller writes a weighted-round-robin ``TraefikService`` named after the apex Service, in
the Canary's namespace; the user's ``IngressRoute`` sends the app's traffic to it with
``kind: TraefikService``. Each backend is a Kubernetes Service on the Canary's port, weighted by
its percentage (Traefik's weights are integers, relative to their sum)::

    spec:
      weighted:
        services:
          - {name: <apex>-primary, port: <port>, weight: 90}
          - {name: <apex>-canary, port: <port>, weight: 10}

**A backend whose weight is 0 is left out**, as Flagger does: Traefik's CRD provider builds a
TraefikService only when every Service it names has serving endpoints (unless Traefik runs with
``allowEmptyServices``), and drops the whole TraefikService otherwise, so the IngressRoute would
answer 404 while the canary is scaled to zero between releases. Its weighted round robin ignores
a zero weight anyway, so leaving the backend out routes exactly the same requests.

**Only the split**: a TraefikService carries weights, and Flagger's traefik router applies no
route option. Every option is refused by name before anything is written
(:func:`canary.routers.factory.route_options_problem`): A/B matches belong to the IngressRoute's
rule, which is the user's; Traefik's own mirroring and sticky cookies are other kinds of
TraefikService with other semantics than ``analysis.mirror`` and ``analysis.sessionAffinity``.

**Reading** rebuilds the object from the percentages found and compares normal forms (Traefik's
defaults filled in: kind ``Service``, the TraefikService's namespace, weight 1; weights replaced by
whether they are positive, since 9/1 routes as 90/10 does). Anything else, such as a sticky
cookie, a zero-weight backend or a backend option this router does not write, reads as ``None``
and the controller writes the object again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from canary.errors import RouterError
from canary.routers.base import Companion, RouteResource, RouteTarget, Weights
from canary.routers.quantity import to_percentages

GROUP = "traefik.io"
VERSION = "v1alpha1"
KIND = "TraefikService"
PLURAL = "traefikservices"
#: Traefik's CRD treats a backend without ``kind`` as a Kubernetes Service and one without
#: ``weight`` as weight 1.
DEFAULT_KIND = "Service"
DEFAULT_WEIGHT = 1
#: Any weight above this is not one a person or this controller writes; keeps arithmetic small.
MAX_WEIGHT = 1_000_000
#: Stands for a positive weight in the normal form; see the module doc.
_POSITIVE = "<positive>"


@dataclass(frozen=True)
class TraefikServiceRouter:
    """Builds and reads the weighted ``TraefikService`` named after the apex Service."""

    @property
    def resource(self) -> RouteResource:
        return RouteResource(group=GROUP, version=VERSION, plural=PLURAL, kind=KIND)

    @property
    def companion_resources(self) -> tuple[RouteResource, ...]:
        return ()

    def companions(self, target: RouteTarget) -> tuple[Companion, ...]:
        return ()

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        # The factory refuses such Canaries before anything is written; this is the last guard
        # against a TraefikService that quietly routes less than was asked.
        if target.options.fields:
            raise RouterError(f"a TraefikService cannot apply {', '.join(target.options.fields)}: "
                              "it carries only the weights of the split")
        if weights.experiment:
            raise RouterError(f"a TraefikService cannot route the experiment stage ({weights}): "
                              "A/B matches and mirroring are applied only with spec.provider: gatewayapi")
        services = [
            {"name": name, "port": target.port, "weight": weight}
            for name, weight in ((target.primary, weights.primary), (target.canary, weights.canary))
            if weight > 0
        ]
        return {
            "apiVersion": self.resource.api_version,
            "kind": KIND,
            "metadata": target.metadata(),
            "spec": {"weighted": {"services": services}},
        }

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            return None
        found = _normal_spec(spec, target.namespace)
        if found is None:
            return None
        weights = _percentages(target, spec)
        if weights is None:
            return None
        wanted = _normal_spec(self.build(target, weights)["spec"], target.namespace)
        return weights if found == wanted else None


def _percentages(target: RouteTarget, spec: Mapping[str, Any]) -> Weights | None:
    """The split's percentages; ``None`` unless every backend is the primary or the canary, once."""
    weighted = spec.get("weighted")
    services = weighted.get("services") if isinstance(weighted, Mapping) else None
    if not isinstance(services, list):
        return None
    found: dict[str, Fraction] = {}
    for service in services:
        if not isinstance(service, Mapping):
            return None
        name, weight = service.get("name"), _weight(service.get("weight", DEFAULT_WEIGHT))
        if name not in (target.primary, target.canary) or name in found or weight is None:
            return None
        found[str(name)] = weight
    return to_percentages(found.get(target.primary, Fraction(0)), found.get(target.canary, Fraction(0)))


def _normal_spec(spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    """``spec`` with Traefik's defaults filled in and positive weights made equal; ``None`` when
    it is not shaped like a weighted TraefikService."""
    weighted = spec.get("weighted")
    if not isinstance(weighted, Mapping):
        return None
    services = weighted.get("services")
    if not isinstance(services, list) or not all(isinstance(s, Mapping) for s in services):
        return None
    normal_services = []
    for service in services:
        out = dict(service)
        out.setdefault("kind", DEFAULT_KIND)
        out.setdefault("namespace", namespace)
        weight = _weight(out.get("weight", DEFAULT_WEIGHT))
        if weight is None:
            return None
        out["weight"] = _POSITIVE if weight > 0 else 0
        normal_services.append(out)
    # Traefik's weighted round robin does not depend on the order of its services.
    normal_services.sort(key=lambda s: repr(sorted(s.items())))
    return {
        **{k: v for k, v in spec.items() if k != "weighted"},
        "weighted": {**weighted, "services": normal_services},
    }


def _weight(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        return None
    return Fraction(value)
