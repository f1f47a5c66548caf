"""The mesh CRDs an e2e cluster installs, grouped by the mesh whose CRDs they imitate ("flavours").

A cluster serves one flavour at a time; the controller finds the TrafficSplit versions through API
discovery, so switching flavour is how a scenario tests "Linkerd serves v1alpha1 and v1alpha2"
against "Traefik Mesh serves only v1alpha3". The CRD files are written by hand from the SMI
specification and the Gateway API reference (docs/testing.md lists which mesh serves which
version); :mod:`e2e.crds.install` puts a flavour on a running API server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

CRD_ROOT = Path(__file__).resolve().parent

TRAFFICSPLIT_CRD = "trafficsplits.split.smi-spec.io"
HTTPROUTEGROUP_CRD = "httproutegroups.specs.smi-spec.io"
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"


class UnknownFlavourError(KeyError):
    """A flavour name that is not in :data:`FLAVOURS`."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown mesh CRD flavour {self.name!r}; known flavours: {', '.join(FLAVOURS)}"


class CRDFileError(ValueError):
    """A CRD file under e2e/crds/ is unreadable or is not a CustomResourceDefinition."""


@dataclass(frozen=True)
class Flavour:
    """The CRDs one mesh ships: which TrafficSplit versions it serves, and whether HTTPRoute."""

    name: str
    directory: Path
    #: Served TrafficSplit versions, the storage version first; empty when the flavour has no SMI.
    trafficsplit_versions: tuple[str, ...]
    has_httproute: bool
    description: str

    @property
    def storage_version(self) -> str | None:
        """The TrafficSplit storage version, or ``None`` for a flavour without SMI."""
        return self.trafficsplit_versions[0] if self.trafficsplit_versions else None


def _flavour(name: str, versions: tuple[str, ...], has_httproute: bool, description: str) -> Flavour:
    return Flavour(name, CRD_ROOT / name, versions, has_httproute, description)


#: Every flavour by name. The order is stable so tests and CLIs can list them predictably.
FLAVOURS: Mapping[str, Flavour] = MappingProxyType(
    {
        flavour.name: flavour
        for flavour in (
            _flavour(
                "linkerd",
                ("v1alpha1", "v1alpha2"),
                False,
                "Linkerd SMI extension: TrafficSplit v1alpha1 (storage; quantity weights) and v1alpha2, "
                "plus HTTPRouteGroup v1alpha1",
            ),
            _flavour(
                "osm",
                ("v1alpha2",),
                False,
                "Open Service Mesh: TrafficSplit v1alpha2 only, plus HTTPRouteGroup v1alpha4",
            ),
            _flavour(
                "traefik",
                ("v1alpha3",),
                False,
                "Traefik Mesh: TrafficSplit v1alpha3 only (with matches), plus HTTPRouteGroup v1alpha3",
            ),
            _flavour(
                "sdk",
                ("v1alpha4",),
                False,
                "SMI Go SDK CRD file: TrafficSplit v1alpha4 only (weight >= 0), plus HTTPRouteGroup v1alpha4",
            ),
            _flavour(
                "gatewayapi",
                (),
                True,
                "Gateway API only: HTTPRoute v1 (storage) and v1beta1, no SMI",
            ),
        )
    }
)


def get_flavour(name: str) -> Flavour:
    """The flavour called ``name``; raises :class:`UnknownFlavourError` listing the known ones."""
    try:
        return FLAVOURS[name]
    except KeyError:
        raise UnknownFlavourError(name) from None


def flavour_manifests(name: str) -> list[Path]:
    """The flavour's CRD files, sorted by name, each holding one CustomResourceDefinition."""
    flavour = get_flavour(name)
    paths = sorted(flavour.directory.glob("*.yaml"))
    if not paths:
        raise CRDFileError(f"flavour {name!r} has no CRD files in {flavour.directory}; the checkout is incomplete")
    return paths


def load_manifest(path: Path) -> dict[str, Any]:
    """The one CustomResourceDefinition in ``path``, as a plain dict ready to send to the server."""
    try:
        with path.open(encoding="utf-8") as fh:
            docs = [doc for doc in yaml.safe_load_all(fh) if doc is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise CRDFileError(f"cannot read CRD file {path}: {exc}") from exc
    if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind") != "CustomResourceDefinition":
        raise CRDFileError(f"{path} must hold exactly one CustomResourceDefinition document")
    # YAML anchors load as one object shared by several parents; a JSON round trip unshares
    # them, so a caller that edits one place (resourceVersion, a test's tweak) edits only that.
    crd: dict[str, Any] = json.loads(json.dumps(docs[0]))
    return crd


def flavour_crds(name: str) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition of the flavour, in :func:`flavour_manifests` order."""
    return [load_manifest(path) for path in flavour_manifests(name)]


def crd_names(name: str) -> list[str]:
    """``metadata.name`` of each of the flavour's CRDs (``<plural>.<group>``)."""
    return [str(crd["metadata"]["name"]) for crd in flavour_crds(name)]


def all_mesh_crd_names() -> list[str]:
    """Every CRD name any flavour installs: what switching flavours may have to remove."""
    names: set[str] = set()
    for flavour in FLAVOURS:
        names.update(crd_names(flavour))
    return sorted(names)


__all__ = [
    "CRD_ROOT",
    "FLAVOURS",
    "HTTPROUTEGROUP_CRD",
    "HTTPROUTE_CRD",
    "TRAFFICSPLIT_CRD",
    "CRDFileError",
    "Flavour",
    "UnknownFlavourError",
    "all_mesh_crd_names",
    "crd_names",
    "flavour_crds",
    "flavour_manifests",
    "get_flavour",
    "load_manifest",
]
