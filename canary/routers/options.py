"""What a Canary asks of its route beyond the split: where it attaches, which hosts, timeouts,
header and URL rewriting, and the experiment (A/B matches, mirroring) and session affinity.

Built once from the spec in the Kubernetes layer and handed to the router inside the
:class:`~canary.routers.base.RouteTarget`, so a router stays a pure function of its arguments.
Routers that cannot express an option refuse the Canary before anything is written (see
:func:`canary.routers.factory.route_options_problem`); none drops one silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from canary.domain.route_spec import HeaderOperations, ParentRef, RequestMatch, Rewrite, SessionAffinity
from canary.domain.spec import CanarySpec


@dataclass(frozen=True)
class RouteOptions:
    #: ``spec.service.gatewayRefs``; empty: attach to the apex Service (GAMMA mesh mode).
    parent_refs: tuple[ParentRef, ...] = ()
    hosts: tuple[str, ...] = ()
    timeout: timedelta | None = None
    backend_timeout: timedelta | None = None
    headers: HeaderOperations | None = None
    rewrite: Rewrite | None = None
    #: A/B conditions; the canary gets requests meeting any one while ``Weights.experiment``.
    match: tuple[RequestMatch, ...] = ()
    #: Copy requests to the canary while ``Weights.experiment``; ``mirror_weight`` percent of them.
    mirror: bool = False
    mirror_weight: int | None = None
    session_affinity: SessionAffinity | None = None
    #: The spec paths of the options set, for refusals that name them.
    fields: tuple[str, ...] = ()
    #: The analysis never gives the canary a share (``iterations``, no step weights): what a
    #: router without weights (``provider: kubernetes``) needs.
    blue_green: bool = False
    #: The spec paths that ask for a weighted split (``stepWeight``, ``stepWeights``) when set.
    weight_fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: CanarySpec) -> RouteOptions:
        service, analysis = spec.service, spec.analysis
        return cls(
            parent_refs=service.gateway_refs,
            hosts=service.hosts,
            timeout=service.timeout,
            backend_timeout=service.backend_timeout,
            headers=service.headers,
            rewrite=service.rewrite,
            match=analysis.match,
            mirror=analysis.mirror,
            mirror_weight=analysis.mirror_weight,
            session_affinity=analysis.session_affinity,
            fields=service.route_options + analysis.route_options,
            blue_green=analysis.blue_green,
            weight_fields=tuple(f"spec.analysis.{name}" for name, value in (
                ("stepWeight", analysis.step_weight), ("stepWeights", analysis.step_weights)) if value),
        )

    @property
    def has_experiment(self) -> bool:
        """Whether ``Weights.experiment`` changes anything for this Canary."""
        return bool(self.match) or self.mirror


NO_OPTIONS = RouteOptions()
