"""What Traefik itself says it does: the split it applies (its API) and the requests it sent
each backend (its Prometheus counters).

Scenarios judge Traefik by these and not by the route objects the controller writes, so "the
gateway routes as the controller asked" is measured at the gateway. Traefik names a backend
Service after the provider that brought it: ``<ns>-<service>-http-<port>@kubernetesgateway``
through an HTTPRoute, ``<ns>-<service>-<port>@kubernetescrd`` through a TraefikService;
:func:`backend_of` reads both forms back to the Service's name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any


def backend_of(traefik_service: str, namespace: str, services: Collection[str]) -> str | None:
    """Which of ``services`` (Service names in ``namespace``) Traefik's service name stands for,
    with or without its ``@provider`` suffix; None for any other."""
    name = traefik_service.split("@", 1)[0]
    for service in services:
        if re.fullmatch(rf"{re.escape(namespace)}-{re.escape(service)}-(?:http-)?\d+", name):
            return service
    return None


def requests_by_backend(by_service: Mapping[str, Mapping[str, float]], namespace: str,
                        services: Collection[str]) -> dict[str, int]:
    """Requests Traefik has proxied to each of ``services`` since it started, all codes summed,
    from :meth:`~e2e.traefik.gateway.TraefikGateway.requests_by_service`."""
    out = {s: 0 for s in services}
    for label, by_code in by_service.items():
        backend = backend_of(label, namespace, services)
        if backend is not None:
            out[backend] += int(sum(by_code.values()))
    return out


def applied_split(services_json: Iterable[Mapping[str, Any]], namespace: str,
                  services: Collection[str]) -> dict[str, float] | None:
    """The shares of ``services`` in the weighted service Traefik applies that balances between
    all of them (the split rule), from its API's ``/api/http/services``; None when there is none.

    A backend Traefik lists without weight, or leaves out because its weight is 0, gets 0.
    """
    candidates: list[dict[str, float]] = []
    for entry in services_json:
        weighted = entry.get("weighted") or {}
        children = weighted.get("services") or []
        weights: dict[str, float] = {}
        for child in children:
            backend = backend_of(str(child.get("name", "")), namespace, services)
            if backend is not None:
                weights[backend] = weights.get(backend, 0.0) + float(child.get("weight") or 0)
        if weights and any(weights.values()):
            candidates.append(weights)
    # The split balances the apex's backends. An A/B rule's service names only the canary, and a
    # TraefikService leaves a zero-weight backend out, so a one-backend service is the split only
    # when it is the only one.
    both = [w for w in candidates if len(w) > 1]
    chosen = both[0] if both else (candidates[0] if len(candidates) == 1 else None)
    if chosen is None:
        return None
    total = sum(chosen.values())
    return {s: chosen.get(s, 0.0) / total for s in services}
