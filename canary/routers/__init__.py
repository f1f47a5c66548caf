"""Routers: how the controller tells a mesh to split traffic (see ``base`` and ``factory``)."""

from canary.routers.base import RouteOptions, RouteResource, Router, RouteTarget, Weights
from canary.routers.factory import (
    GATEWAY_API,
    PROVIDERS,
    ROUTE_RESOURCES,
    SMI,
    SMI_VERSIONS,
    choose_smi_version,
    router_for,
)
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.smi import TrafficSplitRouter

__all__ = [
    "GATEWAY_API",
    "PROVIDERS",
    "ROUTE_RESOURCES",
    "SMI",
    "SMI_VERSIONS",
    "HTTPRouteRouter",
    "RouteOptions",
    "RouteResource",
    "RouteTarget",
    "Router",
    "TrafficSplitRouter",
    "Weights",
    "choose_smi_version",
    "router_for",
]
