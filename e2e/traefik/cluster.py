"""What Traefik needs on the API server: the CRDs it serves, a ``GatewayClass`` and a ``Gateway``.

The Gateway API CRDs are the standard channel exactly as the ``sigs.k8s.io/gateway-api`` module
ships them (``build.sh`` copies them next to the binary), not the hand-written HTTPRoute of the
simulated ``gatewayapi`` mesh flavour (``e2e/crds/gatewayapi``). Every one of them is installed
here except ``httproutes``: that CRD is also a mesh-flavour CRD, deleted and recreated when a
scenario switches flavour, so it goes through the same switch (``e2e.crds.install``) with the
standard file in place of the flavour's copy; see :func:`standard_httproute`.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from e2e.cluster import install_manifests
from e2e.cluster.binaries import TraefikCRDs
from e2e.crds import HTTPROUTE_CRD, load_manifest
from e2e.processes import E2ESetupError, wait_until

GATEWAY_CLASS = "traefik"
#: The controller name Traefik's Gateway API provider claims GatewayClasses by.
CONTROLLER_NAME = "traefik.io/gateway-controller"
GATEWAY_NAMESPACE = "traefik-gateway"
GATEWAY_NAME = "traefik"
LISTENER_NAME = "web"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
READY_TIMEOUT = 60.0


class GatewayNotProgrammedError(E2ESetupError):
    """Traefik did not report the Gateway Accepted and Programmed in time."""


def _crd_file(crds: TraefikCRDs, crd_name: str) -> Path:
    plural, _, group = crd_name.partition(".")
    return crds.gateway_api / f"{group}_{plural}.yaml"


def standard_httproute(crds: TraefikCRDs) -> dict[str, Any]:
    """The standard channel's HTTPRoute CRD, to serve in place of the simulated flavour's copy."""
    path = _crd_file(crds, HTTPROUTE_CRD)
    if not path.is_file():
        raise E2ESetupError(f"{path} is missing; run e2e/cluster/build.sh (it copies the Gateway API CRDs)")
    return load_manifest(path)


def install_traefik_crds(api: client.ApiClient, crds: TraefikCRDs) -> list[str]:
    """Apply the Gateway API standard CRDs but HTTPRoute, and Traefik's ``traefik.io`` CRDs;
    return once every one is Established and served."""
    httproute = _crd_file(crds, HTTPROUTE_CRD)
    files = [path for path in sorted(crds.gateway_api.glob("*.yaml")) if path != httproute]
    return install_manifests(api, [*files, crds.traefik])


def gateway_manifests(web_port: int) -> list[dict[str, Any]]:
    """The GatewayClass Traefik claims and one Gateway whose HTTP listener is Traefik's ``web``
    entryPoint: Traefik binds listeners to entryPoints by port, so the port must be that one."""
    return [
        {
            "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        {
            "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": LISTENER_NAME,
                        "protocol": "HTTP",
                        "port": web_port,
                        # The apps live in each scenario's own namespace.
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


def apply_gateway(api: client.ApiClient, workdir: Path, web_port: int) -> None:
    """Apply :func:`gateway_manifests` (kept as ``workdir/gateway.yaml`` for whoever debugs a run)."""
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump_all(gateway_manifests(web_port), sort_keys=False))
    install_manifests(api, [path])


def _gateway(api: client.ApiClient) -> dict[str, Any]:
    gateway = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, GATEWAY_NAMESPACE, "gateways", GATEWAY_NAME
    )
    return gateway if isinstance(gateway, dict) else {}


def gateway_conditions(api: client.ApiClient) -> dict[str, dict[str, Any]]:
    """The Gateway's status conditions by type, as Traefik wrote them (empty before it did)."""
    conditions = (_gateway(api).get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in conditions}


def wait_gateway_programmed(api: client.ApiClient, *, timeout: float = READY_TIMEOUT) -> None:
    """Wait until Traefik reports the Gateway ``Accepted`` and ``Programmed`` for its current
    generation (a Gateway left by an earlier run on another cluster may carry old conditions)."""

    def programmed() -> bool:
        gateway = _gateway(api)
        generation = (gateway.get("metadata") or {}).get("generation")
        conditions = {str(c.get("type")): c for c in (gateway.get("status") or {}).get("conditions") or []}
        for kind in ("Accepted", "Programmed"):
            condition = conditions.get(kind) or {}
            if condition.get("status") != "True" or condition.get("observedGeneration") != generation:
                # Raised into wait_until, which quotes the last one if the wait times out.
                raise GatewayNotProgrammedError(
                    f"{kind} is {condition.get('status')} for generation {condition.get('observedGeneration')} "
                    f"of {generation} ({condition.get('reason')}: {condition.get('message')})"
                )
        return True

    try:
        wait_until(programmed, timeout=timeout, what=f"Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} to be Accepted and Programmed by Traefik")
    except E2ESetupError as exc:
        raise GatewayNotProgrammedError(str(exc)) from exc


class RoutesNotWatchedError(E2ESetupError):
    """Traefik did not accept a probe HTTPRoute in time: it is not watching HTTPRoutes."""


#: The back-off client-go's reflector reaches while a watched resource is missing is 30 s, plus jitter.
ROUTES_WATCHED_TIMEOUT = 90.0


def _probe_route(name: str) -> dict[str, Any]:
    # No backendRefs: Traefik accepts the route without any Service, and nothing routes to it
    # (its hostname is under .invalid, which never resolves).
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
            "hostnames": [f"{name}.invalid"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
        },
    }


def _accepted_by_traefik(route: dict[str, Any]) -> bool:
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") != CONTROLLER_NAME:
            continue
        if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in parent.get("conditions") or []):
            return True
    return False


def wait_routes_watched(api: client.ApiClient, *, timeout: float = ROUTES_WATCHED_TIMEOUT) -> None:
    """Wait until a running Traefik sees HTTPRoutes again: it accepts a fresh probe route.

    A scenario that switches to an SMI flavour deletes the HTTPRoute CRD while Traefik runs. Its
    watch of HTTPRoutes then fails, and client-go retries with a back-off that grows to 30 s, so
    once the CRD is back Traefik may notice new routes only that much later: a scenario that
    expected its route applied within seconds waited in vain (CI, twice). A route Traefik has
    accepted proves the watch is live again.
    """
    custom = client.CustomObjectsApi(api)
    name = f"canary-e2e-probe-{secrets.token_hex(3)}"
    custom.create_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, GATEWAY_NAMESPACE, "httproutes",
                                           _probe_route(name))

    def accepted() -> bool:
        route = custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, GATEWAY_NAMESPACE,
                                                    "httproutes", name)
        return isinstance(route, dict) and _accepted_by_traefik(route)

    try:
        wait_until(accepted, timeout=timeout, what=f"Traefik to accept the probe HTTPRoute {GATEWAY_NAMESPACE}/{name}")
    except E2ESetupError as exc:
        raise RoutesNotWatchedError(str(exc)) from exc
    finally:
        with contextlib.suppress(client.ApiException):
            custom.delete_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, GATEWAY_NAMESPACE, "httproutes", name)
