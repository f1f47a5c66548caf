"""SMI ``TrafficSplit`` routers, one per served version of ``split.smi-spec.io``.

The versions differ in little that matters here: v1alpha3 and v1alpha4 add ``matches`` (we write
none) and v1alpha1 types weights as Kubernetes quantities where later versions use numbers. One
class, parametrised by version, covers all four.

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
from canary.routers.base import RouteResource, RouteTarget, Weights
from canary.routers.quantity import pair_percentages, parse_weight


GROUP = "split.smi-spec.io"
KIND = "TrafficSplit"
PLURAL = "trafficsplits"
#: Newest first: the order in which an unpinned provider picks among served versions.
QUANTITY_VERSIONS = frozenset({"v1alpha1"})


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

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        # The factory refuses such Canaries before anything is written; this is the last guard
        # against a TrafficSplit that quietly routes less than was asked.
        if weights.experiment:
            raise RouterError(f"a TrafficSplit cannot route the experiment stage ({weights}): A/B matches and "
                              "mirroring are applied only with spec.provider: gatewayapi")
        if target.options.fields:
            raise RouterError(f"a TrafficSplit cannot apply {', '.join(target.options.fields)}: "
                              "they are applied only with spec.provider: gatewayapi")
        return {
            "apiVersion": self.resource.api_version,
            "kind": KIND,
            "metadata": target.metadata(),
            "spec": {
                "service": target.apex,
                "backends": [
                    {"service": target.primary, "weight": self._encode(weights.primary)},
                    {"service": target.canary, "weight": self._encode(weights.canary)},
                ],
            },
        }

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping) or spec.get("service") != target.apex:
            return None
        # With matches, only matching requests are split and the rest go to the apex, so the
        # weights no longer describe the canary's share of traffic.
        if spec.get("matches"):
            return None
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

