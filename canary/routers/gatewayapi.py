"""Gateway API ``HTTPRoute`` router: the split as weighted ``backendRefs``, plus what the Canary's
route options ask for (:class:`~canary.routers.options.RouteOptions`), as Flagger's router does.

**Where it attaches**: to ``spec.service.gatewayRefs`` (a Gateway, north-south) or, without
them, to the apex Service the GAMMA way (a mesh). ``hosts`` become ``hostnames``; ``timeout``,
``backendTimeout``, ``headers`` and ``rewrite`` become every rule's timeouts and filters.

**Rules, in order** (the Gateway API picks among rules by how specific their matches are, so
order only breaks ties; the split rule is always last, where reading looks for it):

1. While ``Weights.experiment`` with ``analysis.match``: one rule per A/B condition, sending
   the requests that meet it to the canary.
2. While the canary has traffic with ``analysis.sessionAffinity``: a rule sending requests that
   carry the canary's session cookie to the canary (and, with ``primaryCookieName``, one
   sending the primary's cookie to the primary).
3. The split: primary and canary by weight. With session affinity each backend's responses set
   its cookie, so a client stays where the split first sent it; while ``Weights.experiment``
   with ``analysis.mirror`` a ``RequestMirror`` filter copies requests to the canary.

The cookie's value is the revision under analysis: the same for every request of one run, and
different in the next, so a cookie from an earlier run pins no one. Reading rebuilds the route
from the weights found and compares normal forms (:mod:`canary.routers.httproute_normal`):
anything else, including a route whose options are not the Canary's current ones, reads as
``None``, and the controller writes it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from canary.errors import CanaryError, RouterError
from canary.routers.base import RouteResource, RouteTarget, Weights
from canary.routers.httproute_normal import normal_spec
from canary.routers.httproute_rules import (
    cookie_match,
    mirror_filter,
    parent_ref,
    request_match,
    rule_filters,
    rule_timeouts,
    set_cookie_filter,
)
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
    """Builds and reads the ``HTTPRoute`` named after the apex Service."""

    @property
    def resource(self) -> RouteResource:
        return RouteResource(group=GROUP, version=VERSION, plural=PLURAL, kind=KIND)

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        spec: dict[str, Any] = {"parentRefs": _parent_refs(target)}
        if target.options.hosts:
            spec["hostnames"] = list(target.options.hosts)
        spec["rules"] = _rules(target, weights)
        return {"apiVersion": self.resource.api_version, "kind": KIND, "metadata": target.metadata(), "spec": spec}

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            return None
        rules = spec.get("rules")
        if not isinstance(rules, list) or not rules or not isinstance(rules[-1], Mapping):
            return None
        split = _split_weights(target, rules[-1])
        if split is None:
            return None
        found = normal_spec(spec, target.namespace, target.apex, target.port)
        if found is None:
            return None
        experiments = (False, True) if target.options.has_experiment else (False,)
        for experiment in experiments:
            weights = Weights(split.primary, split.canary, experiment=experiment)
            try:
                wanted = self.build(target, weights)["spec"]
            except CanaryError:
                # Weights this Canary cannot have written (no revision for its cookie yet).
                continue
            if found == normal_spec(wanted, target.namespace, target.apex, target.port):
                return weights
        return None


def _parent_refs(target: RouteTarget) -> list[dict[str, Any]]:
    if target.options.parent_refs:
        return [parent_ref(ref) for ref in target.options.parent_refs]
    # GAMMA: attached to the apex Service. An explicit empty group, since a parentRef's group
    # defaults to the Gateway API's own.
    return [{"group": "", "kind": "Service", "name": target.apex, "port": target.port}]


def _backend(target: RouteTarget, name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": target.port}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _rules(target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
    options = target.options
    if weights.experiment and not options.has_experiment:
        raise RouterError(
            f"weights {weights} ask for an experiment stage, but the Canary sets neither spec.analysis.match "
            "nor spec.analysis.mirror: there is nothing to route to the canary besides its weight"
        )
    filters = rule_filters(options)
    timeouts = rule_timeouts(options)

    def rule(backends: list[dict[str, Any]], match: dict[str, Any] | None = None,
             extra_filters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if match is not None:
            out["matches"] = [match]
        if filters or extra_filters:
            out["filters"] = [*filters, *extra_filters]
        out["backendRefs"] = backends
        if timeouts:
            out["timeouts"] = dict(timeouts)
        return out

    rules: list[dict[str, Any]] = []
    if weights.experiment:
        rules.extend(rule([_backend(target, target.canary)], request_match(m)) for m in options.match)

    primary = _backend(target, target.primary, weights.primary)
    canary = _backend(target, target.canary, weights.canary)
    affinity = options.session_affinity
    if affinity is not None and weights.canary > 0:
        if not target.revision:
            raise RouterError("session affinity needs the revision under analysis for its cookie value, "
                              "and the Canary's status has none yet")
        cookie = (affinity.cookie_name, target.revision)
        rules.append(rule([_backend(target, target.canary)], cookie_match(*cookie)))
        canary["filters"] = [set_cookie_filter(*cookie, affinity)]
        if affinity.primary_cookie_name is not None and weights.primary > 0:
            primary_cookie = (affinity.primary_cookie_name, target.revision)
            rules.append(rule([_backend(target, target.primary)], cookie_match(*primary_cookie)))
            primary["filters"] = [set_cookie_filter(*primary_cookie, affinity)]

    mirror: tuple[dict[str, Any], ...] = ()
    if weights.experiment and options.mirror:
        mirror = (mirror_filter(_service_ref(target, target.canary), options.mirror_weight),)
    rules.append(rule([primary, canary], extra_filters=mirror))
    return rules


def _service_ref(target: RouteTarget, name: str) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": target.port}


def _split_weights(target: RouteTarget, rule: Mapping[str, Any]) -> Weights | None:
    """Percentages of the split rule's two backends; ``None`` unless they are exactly the
    primary and canary Services on the target's port, with valid weights."""
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


def _is_service_on_port(target: RouteTarget, ref: Mapping[str, object]) -> bool:
    return (
        ref.get("group", "") == ""
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", target.namespace) == target.namespace
        and ref.get("port", target.port) == target.port
    )


def _weight(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        return None
    return Fraction(value)
