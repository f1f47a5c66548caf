"""Put one mesh CRD flavour on a running API server, replacing whichever flavour was there.

Why not simply re-apply the files: flavours share CRD names (every SMI flavour has
``trafficsplits.split.smi-spec.io``) but serve different versions, and the API server refuses an
update that drops a version still listed in ``status.storedVersions`` (Linkerd's v1alpha1 stays
there as long as the CRD exists). So a CRD whose version layout differs from the wanted one is
deleted, and recreated once it is gone; deleting it also deletes every object of that kind, which
is what a switch of mesh means anyway. A CRD whose layout already matches is updated in place, so
its objects survive re-installing the same flavour.

The end state is confirmed the way the controller sees it: every new CRD ``Established``, and API
discovery serving exactly the new flavour's versions of each mesh resource (and none of the
resources the flavour does not ship).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from e2e.crds import all_mesh_crd_names, flavour_crds, get_flavour
from e2e.processes import E2ESetupError, wait_until

DEFAULT_TIMEOUT = 60.0
#: Per request, so an API server that accepts but never answers fails the step instead of hanging.
_REQUEST_TIMEOUT = 30.0


class CRDInstallError(E2ESetupError):
    """A mesh CRD could not be removed, created or served; the message names it and the step."""


@dataclass(frozen=True)
class Resource:
    """Where a CRD's objects show in API discovery: its group and plural."""

    crd_name: str
    group: str
    plural: str

    @classmethod
    def from_crd_name(cls, crd_name: str) -> Resource:
        plural, _, group = crd_name.partition(".")
        return cls(crd_name, group, plural)


class CRDStore(Protocol):
    """The few API calls a switch needs; the Kubernetes client's, or a fake in tests."""

    def get(self, name: str) -> dict[str, Any] | None:
        """The CRD object, or ``None`` when it does not exist."""
        ...

    def create(self, crd: Mapping[str, Any]) -> None: ...

    def replace(self, crd: Mapping[str, Any]) -> None:
        """Update in place; ``crd`` carries the ``metadata.resourceVersion`` it replaces."""
        ...

    def delete(self, name: str) -> None:
        """Start deleting; a CRD that is already gone is not an error."""
        ...

    def served_versions(self, group: str, plural: str) -> set[str]:
        """Versions under which API discovery lists ``plural`` in ``group`` right now."""
        ...


def switch_flavour(
    api_client: Any,
    name: str,
    *,
    replacements: Mapping[str, Mapping[str, Any]] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.2,
) -> None:
    """Make the cluster behind ``api_client`` (a ``kubernetes.client.ApiClient``) serve flavour
    ``name``'s mesh CRDs and no other flavour's, waiting up to ``timeout`` seconds for each step.

    ``replacements`` maps a CRD name of the flavour to the CRD to serve instead of the flavour's
    own copy (the Gateway API standard HTTPRoute while Traefik runs); it must keep the name.

    See the module doc for what is deleted. Raises :class:`e2e.crds.UnknownFlavourError` before
    touching the cluster, and :class:`CRDInstallError` (an :class:`E2ESetupError`) naming the CRD
    and step that failed or timed out.
    """
    apply_flavour(KubernetesCRDStore(api_client), name, replacements=replacements, timeout=timeout, interval=interval)


def apply_flavour(
    store: CRDStore,
    name: str,
    *,
    replacements: Mapping[str, Mapping[str, Any]] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.2,
) -> None:
    """:func:`switch_flavour` against any :class:`CRDStore`."""
    get_flavour(name)  # an unknown name fails before anything in the cluster changes
    wanted = {str(crd["metadata"]["name"]): crd for crd in flavour_crds(name)}
    for crd_name, replacement in (replacements or {}).items():
        if crd_name not in wanted or replacement.get("metadata", {}).get("name") != crd_name:
            raise CRDInstallError(f"flavour {name!r} has no CRD {crd_name} to replace, or the replacement is named otherwise")
        wanted[crd_name] = _without_status(replacement)
    managed = sorted(set(all_mesh_crd_names()) | set(wanted))

    keep: dict[str, dict[str, Any]] = {}
    doomed: list[str] = []
    for crd_name in managed:
        existing = store.get(crd_name)
        if existing is None:
            continue
        want = wanted.get(crd_name)
        if want is not None and not _being_deleted(existing) and _same_layout(existing, want):
            keep[crd_name] = existing
        else:
            doomed.append(crd_name)

    for crd_name in doomed:
        _call(f"delete CRD {crd_name}", partial(store.delete, crd_name))
    for crd_name in doomed:
        _wait(
            partial(_gone, store, crd_name),
            timeout=timeout,
            interval=interval,
            what=f"CRD {crd_name} to be deleted (the API server first deletes every object of its kind)",
        )

    for crd_name, want in wanted.items():
        if crd_name in keep:
            body = json.loads(json.dumps(want))
            body["metadata"]["resourceVersion"] = keep[crd_name]["metadata"]["resourceVersion"]
            _call(f"update CRD {crd_name}", partial(store.replace, body))
        else:
            _call(f"create CRD {crd_name}", partial(store.create, want))

    for crd_name in wanted:
        _wait(
            partial(_established, store, crd_name),
            timeout=timeout,
            interval=interval,
            what=f"CRD {crd_name} to be Established",
        )

    for crd_name in managed:
        resource = Resource.from_crd_name(crd_name)
        expected = _served(wanted[crd_name]) if crd_name in wanted else set()
        _wait(
            partial(_discovery_matches, store, resource, expected),
            timeout=timeout,
            interval=interval,
            what=(
                f"API discovery to serve {resource.plural}.{resource.group} in exactly "
                f"{_versions_text(expected)} (flavour {name!r})"
            ),
        )


def _wait(predicate: Callable[[], bool], *, timeout: float, interval: float, what: str) -> None:
    try:
        wait_until(predicate, timeout=timeout, interval=interval, what=what)
    except CRDInstallError:
        raise
    except E2ESetupError as exc:
        raise CRDInstallError(str(exc)) from exc


def _call(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except CRDInstallError:
        raise
    except Exception as exc:
        raise CRDInstallError(f"could not {what}: {exc}") from exc


def _layout(crd: Mapping[str, Any]) -> list[tuple[str, bool, bool]]:
    return sorted(
        (str(v["name"]), bool(v.get("served")), bool(v.get("storage"))) for v in crd["spec"]["versions"]
    )


def _same_layout(existing: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """True when ``want`` can replace ``existing`` in place: same versions, served and stored alike."""
    if _layout(existing) != _layout(want):
        return False
    stored = (existing.get("status") or {}).get("storedVersions") or []
    names = {name for name, _served, _storage in _layout(want)}
    return set(stored) <= names


def _without_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    # Upstream CRD files end with an empty ``status``; the server owns it, so it is not sent.
    body: dict[str, Any] = json.loads(json.dumps(crd))
    body.pop("status", None)
    return body


def _being_deleted(crd: Mapping[str, Any]) -> bool:
    return bool((crd.get("metadata") or {}).get("deletionTimestamp"))


def _served(crd: Mapping[str, Any]) -> set[str]:
    return {str(v["name"]) for v in crd["spec"]["versions"] if v.get("served")}


def _gone(store: CRDStore, name: str) -> bool:
    return store.get(name) is None


def _established(store: CRDStore, name: str) -> bool:
    crd = store.get(name)
    if crd is None:
        raise CRDInstallError(f"CRD {name} vanished after it was created")
    conditions = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
    names = conditions.get("NamesAccepted")
    if names is not None and names.get("status") == "False":
        # Raised into wait_until, which quotes it if the CRD never becomes Established.
        raise CRDInstallError(f"NamesAccepted=False ({names.get('reason')}: {names.get('message')})")
    established = conditions.get("Established")
    return established is not None and established.get("status") == "True"


def _discovery_matches(store: CRDStore, resource: Resource, expected: set[str]) -> bool:
    served = store.served_versions(resource.group, resource.plural)
    if served != expected:
        raise CRDInstallError(f"discovery serves {_versions_text(served)}")
    return True


def _versions_text(versions: set[str]) -> str:
    return ", ".join(sorted(versions)) if versions else "no version"


class KubernetesCRDStore:
    """:class:`CRDStore` over the official ``kubernetes`` client's transport (auth, TLS, host).

    Requests go out as plain JSON through ``ApiClient.call_api`` rather than the generated
    ``ApiextensionsV1Api`` methods: those validate and rebuild bodies as client models, and a
    switch must send the hand-written manifests exactly as they are and read statuses whole.
    """

    _CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

    def __init__(self, api_client: Any) -> None:
        self._api_client = api_client

    def get(self, name: str) -> dict[str, Any] | None:
        status, body = self._request("GET", f"{self._CRDS}/{name}")
        if status == 404:
            return None
        if status >= 400:
            raise CRDInstallError(f"could not read CRD {name}: {_error_text(status, body)}")
        return dict(body)

    def create(self, crd: Mapping[str, Any]) -> None:
        # Strict field validation turns a typo in a hand-written manifest into an error instead
        # of a field the server silently drops.
        status, body = self._request("POST", self._CRDS, body=crd, query={"fieldValidation": "Strict"})
        self._check_write("create", crd, status, body)

    def replace(self, crd: Mapping[str, Any]) -> None:
        name = crd["metadata"]["name"]
        status, body = self._request("PUT", f"{self._CRDS}/{name}", body=crd, query={"fieldValidation": "Strict"})
        self._check_write("update", crd, status, body)

    def delete(self, name: str) -> None:
        status, body = self._request("DELETE", f"{self._CRDS}/{name}")
        if status >= 400 and status != 404:
            raise CRDInstallError(f"could not delete CRD {name}: {_error_text(status, body)}")

    def served_versions(self, group: str, plural: str) -> set[str]:
        # The same two discovery documents the controller reads: /apis for the group's versions,
        # then each version's resource list.
        status, groups = self._request("GET", "/apis")
        if status >= 400:
            raise CRDInstallError(f"API discovery (GET /apis) failed: {_error_text(status, groups)}")
        versions = [
            str(v["version"])
            for found in groups.get("groups") or []
            if found.get("name") == group
            for v in found.get("versions") or []
        ]
        served: set[str] = set()
        for version in versions:
            status, resources = self._request("GET", f"/apis/{group}/{version}")
            if status == 404:
                continue  # dropped between the two requests
            if status >= 400:
                raise CRDInstallError(f"API discovery (GET /apis/{group}/{version}) failed: {_error_text(status, resources)}")
            if any(r.get("name") == plural for r in resources.get("resources") or []):
                served.add(version)
        return served

    def _request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, query: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, payload, post = self._api_client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api_client.call_api(method, url, headers, payload, post, _request_timeout=_REQUEST_TIMEOUT)
            status, raw = int(response.status), response.read()
        except ApiException as exc:
            status, raw = int(exc.status or 0), exc.body
        except Exception as exc:
            raise CRDInstallError(f"{method} {path} could not reach the API server: {exc}") from exc
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"message": raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)}

    def _check_write(self, verb: str, crd: Mapping[str, Any], status: int, body: Any) -> None:
        if status >= 400:
            raise CRDInstallError(
                f"the API server refused to {verb} CRD {crd['metadata']['name']}: {_error_text(status, body)}; "
                "fix the manifest under e2e/crds/"
            )


def _error_text(status: int, body: Any) -> str:
    message = body.get("message") if isinstance(body, Mapping) else None
    return f"HTTP {status}: {message or body}"


__all__ = [
    "DEFAULT_TIMEOUT",
    "CRDInstallError",
    "CRDStore",
    "KubernetesCRDStore",
    "Resource",
    "apply_flavour",
    "switch_flavour",
]
