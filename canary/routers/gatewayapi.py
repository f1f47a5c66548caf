"""Gateway API ``HTTPRoute`` router, attached to the apex Service the GAMMA way.

The route has one rule whose two ``backendRefs`` carry the weights. Reading tolerates the values
the API server fills in from the CRD's defaults (a backend ``weight`` of 1, backend ``group`` ""
and ``kind`` Service, a rule match on path prefix ``/``), since a route read back from the
cluster carries them although we never wrote them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from canary.routers.base import RouteResource, RouteTarget, Weights
from canary.routers.quantity import pair_percentages

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
KIND = "HTTPRoute"
PLURAL = "httproutes"
#: Gateway API bounds an HTTPRoute backend weight to this range; 1 is its default.
MAX_WEIGHT = 1_000_000
DEFAULT_WEIGHT = 1


@dataclass(frozen=True)
class HTTPRouteRouter:
    """Builds and reads an ``HTTPRoute`` whose parent is the apex Service."""

    @property
    def resource(self) -> RouteResource:
        return RouteResource(group=GROUP, version=VERSION, plural=PLURAL, kind=KIND)

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        return {
            "apiVersion": self.resource.api_version,
            "kind": KIND,
            "metadata": target.metadata(),
            "spec": {
                # An explicit empty group: a parentRef's group defaults to the Gateway API's own.
                "parentRefs": [{"group": "", "kind": "Service", "name": target.apex, "port": target.port}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": target.primary, "port": target.port, "weight": weights.primary},
                            {"name": target.canary, "port": target.port, "weight": weights.canary},
                        ]
                    }
                ],
            },
        }

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping) or not _attached_to_apex(target, spec.get("parentRefs")):
            return None
        rules = spec.get("rules")
        # A second rule, or matches narrower than "everything", means only part of the traffic
        # follows these weights.
        if not isinstance(rules, list) or len(rules) != 1:
            return None
        rule = rules[0]
        if not isinstance(rule, Mapping) or not _matches_everything(rule.get("matches")):
            return None
        refs = rule.get("backendRefs")
        if not isinstance(refs, list):
            return None
        pairs = []
        for ref in refs:
            if not isinstance(ref, Mapping) or not _is_service_on_port(target, ref):
                return None
            weight = _weight(ref.get("weight", DEFAULT_WEIGHT))
            if weight is None:
                return None
            pairs.append((ref.get("name"), weight))
        return pair_percentages(pairs, primary=target.primary, canary=target.canary)


def _attached_to_apex(target: RouteTarget, parent_refs: object) -> bool:
    if not isinstance(parent_refs, list) or len(parent_refs) != 1:
        return False
    ref = parent_refs[0]
    return (
        isinstance(ref, Mapping)
        and ref.get("group") == ""
        and ref.get("kind") == "Service"
        and ref.get("name") == target.apex
        and ref.get("namespace", target.namespace) == target.namespace
        and ref.get("port", target.port) == target.port
    )


def _is_service_on_port(target: RouteTarget, ref: Mapping[str, object]) -> bool:
    return (
        ref.get("group", "") == ""
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", target.namespace) == target.namespace
        and ref.get("port", target.port) == target.port
    )


def _matches_everything(matches: object) -> bool:
    if matches is None or matches == []:
        return True
    if not isinstance(matches, list):
        return False
    # Matches are alternatives, so one catch-all among them is enough.
    return any(_is_catch_all(match) for match in matches)


def _is_catch_all(match: object) -> bool:
    if not isinstance(match, Mapping):
        return False
    path = match.get("path", {"type": "PathPrefix", "value": "/"})
    return (
        isinstance(path, Mapping)
        and path.get("type", "PathPrefix") == "PathPrefix"
        and path.get("value", "/") == "/"
        and not any(match.get(key) for key in ("headers", "queryParams", "method"))
    )


def _weight(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        return None
    return Fraction(value)

