"""What Traefik itself says it does: the split it applies (its API) and the requests it sent
each backend (its Prometheus counters).

Scenarios judge Traefik by these and not by the route objects the controller writes, so "the
gateway routes as the controller asked" is measured at the gateway. Traefik names a backend
Service after the provider that brought it: ``<ns>-<service>-http-<port>@kubernetesgateway``
through an HTTPRoute, ``<ns>-<service>-<port>@kubernetescrd`` through a TraefikService;
:func:`backend_of` reads both forms back to the Service's name.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "traefik_service_requests"  # the family of traefik_service_requests_total
_TIMEOUT = 10.0


def backend_of(traefik_service: str, namespace: str, services: Collection[str]) -> str | None:
    """Which of ``services`` (Service names in ``namespace``) Traefik's service name stands for,
    with or without its ``@provider`` suffix; None for any other."""
    name = traefik_service.split("@", 1)[0]
    for service in services:
        if re.fullmatch(rf"{re.escape(namespace)}-{re.escape(service)}-(?:http-)?\d+", name):
            return service
    return None


def requests_by_backend(metrics_text: str, namespace: str, services: Collection[str]) -> dict[str, int]:
    """Requests Traefik has proxied to each of ``services`` since it started, all codes and
    entrypoints summed, from its ``/metrics`` exposition."""
    out = {s: 0 for s in services}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != REQUESTS:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            backend = backend_of(sample.labels.get("service", ""), namespace, services)
            if backend is not None:
                out[backend] += int(sample.value)
    return out


def applied_split(services_json: Iterable[Mapping[str, Any]], namespace: str,
                  services: Collection[str]) -> dict[str, float] | None:
    """The shares of ``services`` in the weighted service Traefik applies that balances between
    all of them (the split rule), from its API's ``/api/http/services``; None when there is none.

    A backend Traefik lists without weight, or leaves out because its weight is 0, gets 0.
    """
    for entry in services_json:
        weighted = entry.get("weighted") or {}
        children = weighted.get("services") or []
        weights: dict[str, float] = {}
        for child in children:
            backend = backend_of(str(child.get("name", "")), namespace, services)
            if backend is not None:
                weights[backend] = weights.get(backend, 0.0) + float(child.get("weight") or 0)
        if not weights or not any(weights.values()):
            continue
        # The split balances the apex's backends; an A/B rule's service names only one of them.
        if len(children) < 2 and len(services) > 1:
            continue
        total = sum(weights.values())
        return {s: weights.get(s, 0.0) / total for s in services}
    return None


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
        return str(response.read().decode())


def fetch_json(url: str) -> Any:
    return json.loads(fetch_text(url))
