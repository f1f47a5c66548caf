"""Picks the router for a Canary's ``spec.provider`` and the SMI versions the cluster serves.

The provider values and what each means live in :mod:`canary.domain.providers`. The served
versions come from API discovery of ``split.smi-spec.io``; these functions are pure so every
combination is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Collection

from canary.domain.providers import GATEWAY_API, PROVIDERS, SMI, SMI_VERSIONS, RouterKind, parse_provider
from canary.errors import RouterError, SpecError
from canary.routers.base import Router, RouteResource
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.smi import TrafficSplitRouter

_PINNED_PREFIX = f"{SMI}:"
#: Every kind of object a router may write; the Kubernetes layer watches all of them.
ROUTE_RESOURCES: tuple[RouteResource, ...] = (
    *(TrafficSplitRouter(v).resource for v in SMI_VERSIONS),
    HTTPRouteRouter().resource,
)

__all__ = [
    "GATEWAY_API",
    "PROVIDERS",
    "ROUTE_RESOURCES",
    "SMI",
    "SMI_VERSIONS",
    "choose_smi_version",
    "router_for",
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


def router_for(provider: str, served_smi_versions: Collection[str]) -> Router:
    """The router for ``spec.provider``; see :func:`choose_smi_version` for the errors."""
    chosen = parse_provider(provider)
    if chosen.router is RouterKind.GATEWAY_API:
        return HTTPRouteRouter()
    return TrafficSplitRouter(choose_smi_version(served_smi_versions, chosen.smi_version))


def _allowed() -> str:
    return f"allowed values are {_quoted(PROVIDERS)}"


def _quoted(values: Collection[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _served_list(served: Collection[str]) -> str:
    # Known versions newest first, then those this controller does not know, for a stable message.
    known = [v for v in SMI_VERSIONS if v in served]
    return ", ".join(known + sorted(set(served) - set(SMI_VERSIONS)))
