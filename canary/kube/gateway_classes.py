"""What the Gateways a Canary attaches to support: each Gateway's GatewayClass and its
``status.supportedFeatures``, read from the API server and kept for a while.

Only Canaries whose HTTPRoute needs an extended Gateway API feature ask (see
:func:`canary.routers.factory.gateways_to_check`), and the answer is shared by every Canary on
the same Gateway, so the cost is at most one Gateway and one GatewayClass GET per Gateway per
:data:`SUPPORT_TTL_SECONDS`, none for a Canary that needs no extended feature.

A Gateway or class that cannot be read (not there yet, no RBAC, the Gateway API not installed)
gives no answer, and the Canary is not refused for it: whether a Gateway exists is its
implementation's business (it reports it in the HTTPRoute's status), and a controller without
the permission must not stop routing. It is said once per Gateway at debug level.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from canary.errors import ApiError
from canary.kube.api import KubeApi
from canary.routers.factory import GatewaySupport, supported_features

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
#: Classes change features only when their implementation is upgraded; look again this often.
SUPPORT_TTL_SECONDS = 300.0
#: Sooner after an unreadable Gateway or a refusal, so that a fix is seen within a problem poll.
RECHECK_TTL_SECONDS = 15.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Entry:
    support: GatewaySupport | None
    read_at: float


class GatewayClasses:
    """Reads and caches :class:`GatewaySupport` per Gateway."""

    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._said: set[tuple[str, str, str]] = set()

    async def support(self, namespace: str, name: str, *, max_age: float = SUPPORT_TTL_SECONDS) -> \
            GatewaySupport | None:
        """The Gateway's class support, read again if older than ``max_age`` (or than
        :data:`RECHECK_TTL_SECONDS` when it could not be read); ``None`` when unreadable."""
        key = (namespace, name)
        entry = self._entries.get(key)
        ttl = max_age if entry is not None and entry.support is not None else min(max_age, RECHECK_TTL_SECONDS)
        if entry is None or self._clock() - entry.read_at > ttl:
            entry = _Entry(await self._read(namespace, name), self._clock())
            self._entries[key] = entry
        return entry.support

    async def _read(self, namespace: str, name: str) -> GatewaySupport | None:
        try:
            gateway = await self._api.get_custom(GROUP, VERSION, namespace, "gateways", name)
            class_name = str(_mapping(gateway.get("spec")).get("gatewayClassName") or "")
            if not class_name:
                return None
            gateway_class = await self._api.get_cluster_custom(GROUP, VERSION, "gatewayclasses", class_name)
        except ApiError as exc:
            self._say_once(namespace, name, f"{exc.status}", str(exc))
            return None
        return GatewaySupport(
            namespace=namespace, name=name, class_name=class_name,
            controller=str(_mapping(gateway_class.get("spec")).get("controllerName") or ""),
            features=supported_features(gateway_class),
        )

    def _say_once(self, namespace: str, name: str, status: str, error: str) -> None:
        if (namespace, name, status) in self._said:
            return
        self._said.add((namespace, name, status))
        log.debug("gateway features unknown: not checked", gateway=f"{namespace}/{name}", error=error)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
