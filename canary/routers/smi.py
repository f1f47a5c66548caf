"""SMI ``TrafficSplit`` routers, one per served version of ``split.smi-spec.io``.

The versions differ in little that matters here: v1alpha3 and v1alpha4 add ``matches`` and
v1alpha1 types weights as Kubernetes quantities where later versions use numbers. One class,
parametrised by version, covers all four.

**A/B testing** (``spec.analysis.match``, v1alpha3 and v1alpha4 only): while the experiment is
judged (``Weights(100, 0, experiment=True)``) the split names an ``HTTPRouteGroup`` holding the
conditions (:mod:`canary.routers.smi_route_groups`, written before the split as its
:class:`~canary.routers.base.Companion`) and sends every request in the group to the canary
(backends primary 0, canary 100). The SMI specification routes requests outside the group as the
apex Service routes them, and the apex selects the primary's pods: the primary keeps everyone
else. Outside the experiment the split has no ``matches`` and the group, named by nothing,
routes nothing.

**v1alpha1 weights** are written as quantity strings in milli-units, in the exact form Go's
``resource.Quantity`` prints them: ``"900m"`` and ``"100m"``, but ``"0"`` rather than ``"0m"`` and
``"1"`` rather than ``"1000m"``. Why strings: Linkerd's CRD declares the weight
``x-kubernetes-int-or-string`` and the adaptor decodes it into a ``resource.Quantity``, so both
spellings work there, but a string is valid against every quantity schema while a bare integer
fails one typed ``string``. Why milli-units: they read as fractions of one, as in the SMI
specification and Linkerd's documentation. Why the canonical form: the API server stores custom
resources verbatim, so what we write is what we read back, unless a Go client decodes and
re-encodes the object, which canonicalises it; writing the canonical form makes that a no-op,
so nothing looks changed to a byte-level drift check.

**Reading** accepts quantities and numbers in every version, not only v1alpha1. The mesh-shipped
CRDs have no conversion webhook (``strategy: None``), so an object written through one version
comes back unchanged through any other: on a Linkerd cluster a ``"500m"`` written via v1alpha1
is returned as is when read via v1alpha2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.domain.providers import SMI_VERSIONS
from canary.errors import RouterError
from canary.routers.base import Companion, RouteResource, RouteTarget, Weights
from canary.routers.quantity import pair_percentages, parse_weight
from canary.routers.smi_route_groups import SPECS_VERSION_FOR_SPLIT, route_group, route_group_resource, split_matches


GROUP = "split.smi-spec.io"
KIND = "TrafficSplit"
PLURAL = "trafficsplits"
#: Newest first: the order in which an unpinned provider picks among served versions.
QUANTITY_VERSIONS = frozenset({"v1alpha1"})
#: The one route option a TrafficSplit can apply (with ``matches``, from v1alpha3 on).
MATCH_FIELD = "spec.analysis.match"
#: The only experiment a split with ``matches`` expresses: the group's requests to the canary,
#: every other request to the apex (the primary).
AB_WEIGHTS = Weights(primary=100, canary=0, experiment=True)


@dataclass(frozen=True)
class TrafficSplitRouter:
    """Builds and reads a ``TrafficSplit`` of one API version."""

    version: str

    def __post_init__(self) -> None:
        if self.version not in SMI_VERSIONS:
            raise ValueError(f"unknown TrafficSplit version {self.version!r}; known: {', '.join(SMI_VERSIONS)}")

    @property
    def resource(self) -> RouteResource:
        return RouteResource(group=GROUP, version=self.version, plural=PLURAL, kind=KIND)

    @property
    def companion_resources(self) -> tuple[RouteResource, ...]:
        return (route_group_resource(self.version),) if self.version in SPECS_VERSION_FOR_SPLIT else ()

    def companions(self, target: RouteTarget) -> tuple[Companion, ...]:
        if target.options.match and self.version in SPECS_VERSION_FOR_SPLIT:
            return (route_group(self.version, target),)
        return ()

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        # The factory refuses such Canaries before anything is written; this is the last guard
        # against a TrafficSplit that quietly routes less than was asked.
        others = [f for f in target.options.fields if f != MATCH_FIELD]
        if others:
            raise RouterError(f"a TrafficSplit cannot apply {', '.join(others)}: "
                              "they are applied only with spec.provider: gatewayapi")
        spec: dict[str, Any] = {"service": target.apex}
        primary, canary = weights.primary, weights.canary
        if weights.experiment:
            self._check_experiment(target, weights)
            spec["matches"] = split_matches(target)
            primary, canary = 0, 100
        spec["backends"] = [
            {"service": target.primary, "weight": self._encode(primary)},
            {"service": target.canary, "weight": self._encode(canary)},
        ]
        return {"apiVersion": self.resource.api_version, "kind": KIND, "metadata": target.metadata(), "spec": spec}

    def _check_experiment(self, target: RouteTarget, weights: Weights) -> None:
        if not target.options.match:
            raise RouterError(f"a TrafficSplit cannot route the experiment stage ({weights}) without "
                              "spec.analysis.match: mirroring is applied only with spec.provider: gatewayapi")
        if self.version not in SPECS_VERSION_FOR_SPLIT:
            raise RouterError(f"TrafficSplit {self.version} has no spec.matches, so it cannot route "
                              f"spec.analysis.match; use TrafficSplit {' or '.join(SPECS_VERSION_FOR_SPLIT)}")
        if weights != AB_WEIGHTS:
            raise RouterError(f"a TrafficSplit with matches sends the matching requests to the canary and the "
                              f"rest to the apex; it cannot route {weights}")

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping) or spec.get("service") != target.apex:
            return None
        # With matches, only matching requests are split and the rest go to the apex, so the
        # weights no longer describe the canary's share of traffic: the one such split that
        # reads as ours is the A/B experiment, exactly as ``build`` writes it.
        matches = spec.get("matches")
        if matches:
            ours = (target.options.match and self.version in SPECS_VERSION_FOR_SPLIT
                    and matches == split_matches(target))
            if not ours or self._read_backends(target, spec) != Weights(primary=0, canary=100):
                return None
            return AB_WEIGHTS
        return self._read_backends(target, spec)

    def _read_backends(self, target: RouteTarget, spec: Mapping[str, Any]) -> Weights | None:
        backends = spec.get("backends")
        if not isinstance(backends, list):
            return None
        pairs = []
        for backend in backends:
            if not isinstance(backend, Mapping):
                return None
            weight = parse_weight(backend.get("weight"))
            if weight is None:
                return None
            pairs.append((backend.get("service"), weight))
        return pair_percentages(pairs, primary=target.primary, canary=target.canary)

    def _encode(self, percent: int) -> int | str:
        if self.version in QUANTITY_VERSIONS:
            return milli_quantity(percent * 10)
        return percent


def milli_quantity(milli: int) -> str:
    """``milli`` thousandths as Go's ``resource.Quantity`` prints them (see the module doc)."""
    # From 1000 whole units on Go would print "1k"; percentages never get near.
    if not 0 <= milli < 1_000_000:
        raise ValueError(f"milli-units out of range: {milli}")
    whole, rest = divmod(milli, 1000)
    return str(whole) if rest == 0 else f"{milli}m"

