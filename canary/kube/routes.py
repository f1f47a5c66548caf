"""Which router a Canary gets: its ``spec.provider`` (or the controller's default) checked
against the API versions the cluster actually serves, found by API discovery."""

from __future__ import annotations

import time

from canary.config import Settings
from canary.domain.observed import Problem
from canary.domain.providers import RouterKind, parse_provider
from canary.domain.spec import CanarySpec
from canary.errors import ApiError, RouterError, SpecError
from canary.kube.api import KubeApi
from canary.routers import factory
from canary.routers.base import Router
from canary.routers.gatewayapi import GROUP as GATEWAY_GROUP
from canary.routers.gatewayapi import VERSION as GATEWAY_VERSION
from canary.routers.smi import GROUP as SMI_GROUP

#: Served versions rarely change; look again only this often, or sooner after a miss.
DISCOVERY_TTL_SECONDS = 300.0
DISCOVERY_MISS_TTL_SECONDS = 15.0


class RouterDirectory:
    def __init__(self, api: KubeApi, settings: Settings) -> None:
        self._api = api
        self._settings = settings
        self._served: dict[str, list[str]] = {}
        self._checked_at: dict[str, float] = {}

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

    async def router_for(self, spec: CanarySpec) -> tuple[Router | None, Problem | None]:
        provider = spec.provider or self._settings.default_provider
        try:
            if parse_provider(provider).router is RouterKind.GATEWAY_API:
                if GATEWAY_VERSION not in await self.served(GATEWAY_GROUP):
                    raise RouterError(
                        f"the cluster does not serve httproutes.{GATEWAY_GROUP}/{GATEWAY_VERSION}: install the "
                        "Gateway API CRDs (v1.1 or later), or set spec.provider to smi"
                    )
                return factory.router_for(provider, ()), None
            return factory.router_for(provider, await self.served(SMI_GROUP)), None
        except SpecError as exc:
            return None, Problem("spec.provider", "InvalidProvider", str(exc))
        except RouterError as exc:
            return None, Problem("spec.provider", "RouterUnavailable", str(exc))
