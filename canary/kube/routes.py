"""Which router a Canary gets: its ``spec.provider`` (or the controller's default) checked
against the API versions the cluster actually serves, found by API discovery, and its route
options against what the Gateways it attaches to support (their GatewayClasses' features)."""

from __future__ import annotations

import time

from canary.config import Settings
from canary.domain.observed import Problem
from canary.domain.spec import CanarySpec
from canary.errors import ApiError, RouterError, SpecError
from canary.kube.api import KubeApi
from canary.kube.gateway_classes import RECHECK_TTL_SECONDS, SUPPORT_TTL_SECONDS, GatewayClasses
from canary.routers import factory
from canary.routers.base import RouteOptions, Router

#: Served versions rarely change; look again only this often, or sooner after a miss.
DISCOVERY_TTL_SECONDS = 300.0
DISCOVERY_MISS_TTL_SECONDS = 15.0


class RouterDirectory:
    def __init__(self, api: KubeApi, settings: Settings, gateways: GatewayClasses | None = None) -> None:
        self._api = api
        self._settings = settings
        self._served: dict[str, list[str]] = {}
        self._checked_at: dict[str, float] = {}
        self._gateways = gateways or GatewayClasses(api)

    async def served(self, group: str) -> list[str]:
        age = time.monotonic() - self._checked_at.get(group, float("-inf"))
        ttl = DISCOVERY_TTL_SECONDS if self._served.get(group) else DISCOVERY_MISS_TTL_SECONDS
        if age > ttl:
            try:
                self._served[group] = await self._api.served_versions(group)
            except ApiError:
                self._served.setdefault(group, [])
            self._checked_at[group] = time.monotonic()
        return self._served.get(group, [])

    async def router_for(self, spec: CanarySpec, namespace: str) -> tuple[Router | None, Problem | None]:
        """The router for the Canary in ``namespace`` with ``spec``, or why it gets none."""
        provider = spec.provider or self._settings.default_provider
        try:
            # A spec the provider cannot carry out is refused whatever the cluster serves.
            refused = factory.route_options_problem(provider, RouteOptions.of(spec))
            if refused is not None:
                return None, refused
            options = RouteOptions.of(spec)
            group = factory.discovery_group(provider)
            router = factory.router_for(provider, await self.served(group) if group is not None else ())
            served = {group: await self.served(group) for group in factory.companion_groups(router, options)}
            refused = factory.router_options_problem(router, options, served)
            gateways = factory.gateways_to_check(router, options, namespace)
            if refused is None and gateways:
                refused = await self._gateway_problem(options, gateways)
            return (None, refused) if refused is not None else (router, None)
        except SpecError as exc:
            return None, Problem("spec.provider", "InvalidProvider", str(exc))
        except RouterError as exc:
            return None, Problem("spec.provider", "RouterUnavailable", str(exc))

    async def _gateway_problem(self, options: RouteOptions, gateways: tuple[tuple[str, str], ...]) -> Problem | None:
        problem = await self._gateway_problem_within(options, gateways, SUPPORT_TTL_SECONDS)
        if problem is None:
            return None
        # Look again before refusing, and keep looking at each problem poll: a class that has
        # gained the feature lets the Canary go on within seconds, not at the next long refresh.
        return await self._gateway_problem_within(options, gateways, RECHECK_TTL_SECONDS)

    async def _gateway_problem_within(self, options: RouteOptions, gateways: tuple[tuple[str, str], ...],
                                      max_age: float) -> Problem | None:
        supports = [await self._gateways.support(ns, name, max_age=max_age) for ns, name in gateways]
        return factory.gateway_features_problem(options, [s for s in supports if s is not None])
