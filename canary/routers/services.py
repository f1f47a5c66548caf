"""``provider: kubernetes``: blue/green with no mesh and no route object, as Flagger does it.

The apex Service selects the primary's pods (the Kubernetes layer keeps it so, as for every
provider), so all traffic reaches the primary; the canary is reached only through its own
``<service>-canary`` Service, by load tests and webhooks. Promotion copies the template into
the primary. There is nothing to split, so this router writes nothing: it has no resource, and
it refuses to build a split that would give the canary a share, which only a blue/green
analysis without ``match`` or ``mirror`` never asks for (the factory refuses the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.domain.weights import ALL_PRIMARY
from canary.errors import RouterError
from canary.routers.base import Companion, RouteResource, RouteTarget, Weights

__all__ = ["ServicesRouter"]


@dataclass(frozen=True)
class ServicesRouter:
    @property
    def resource(self) -> RouteResource | None:
        return None  # the apex Service's selector is the whole route

    @property
    def companion_resources(self) -> tuple[RouteResource, ...]:
        return ()

    def companions(self, target: RouteTarget) -> tuple[Companion, ...]:
        return ()

    def build(self, target: RouteTarget, weights: Weights) -> dict[str, Any]:
        raise RouterError(
            f"spec.provider 'kubernetes' writes no route object: the apex Service {target.namespace}/{target.apex} "
            f"selects the primary, so it cannot route {weights}"
        )

    def read_weights(self, target: RouteTarget, obj: Mapping[str, Any]) -> Weights | None:
        """The apex Service routes everything to the primary; ``obj`` is never a route object."""
        return ALL_PRIMARY
