"""Bodies of the objects the controller owns: the primary workload, config copies, Services.

Pure functions from the target and the Canary to complete objects, so what gets written is
testable without a cluster; ``execute`` only sends them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from canary.domain.spec import CanarySpec, CustomMetadata
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef

PRIMARY_SUFFIX = "-primary"
CANARY_SUFFIX = "-canary"
MANAGED_BY = {"app.kubernetes.io/managed-by": "canary"}

#: "immutable" is left out on purpose: the copy is rewritten at every promotion.
_PAYLOAD_FIELDS = ("apiVersion", "kind", "data", "binaryData", "stringData", "type")


def primary_name(name: str) -> str:
    return f"{name}{PRIMARY_SUFFIX}"


def owner_reference(canary: Mapping[str, Any]) -> dict[str, Any]:
    meta = canary["metadata"]
    return {
        "apiVersion": canary.get("apiVersion", "canary.dev/v1alpha1"),
        "kind": canary.get("kind", "Canary"),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def match_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return dict(((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})


def primary_labels(labels: Mapping[str, str], selector: Mapping[str, str]) -> dict[str, str]:
    """Selector labels get the ``-primary`` suffix so primary and canary pods never overlap."""
    return {k: (f"{v}{PRIMARY_SUFFIX}" if k in selector else v) for k, v in labels.items()}


def primary_template(template: Mapping[str, Any], selector: Mapping[str, str],
                     copied: Iterable[ConfigRef], revision: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(template))
    meta = out.setdefault("metadata", {})
    meta["labels"] = primary_labels(meta.get("labels") or {}, selector)
    # A config-only revision leaves the template as it was, and without a change the primary's
    # pods would never restart to read the new copies (env vars are read once, at start).
    meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: revision}
    renames = {(ref.kind, ref.name): primary_name(ref.name) for ref in copied}
    _rename_config_refs(out.get("spec") or {}, renames)
    return out


def _rename_config_refs(pod_spec: dict[str, Any], renames: Mapping[tuple[str, str], str]) -> None:
    def swap(ref: dict[str, Any] | None, kind: str, key: str) -> None:
        if ref and (kind, ref.get(key)) in renames:
            ref[key] = renames[(kind, ref[key])]

    for volume in pod_spec.get("volumes") or []:
        swap(volume.get("configMap"), "ConfigMap", "name")
        swap(volume.get("secret"), "Secret", "secretName")
        for source in (volume.get("projected") or {}).get("sources") or []:
            swap(source.get("configMap"), "ConfigMap", "name")
            swap(source.get("secret"), "Secret", "name")
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for source in container.get("envFrom") or []:
            swap(source.get("configMapRef"), "ConfigMap", "name")
            swap(source.get("secretRef"), "Secret", "name")
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            swap(value_from.get("configMapKeyRef"), "ConfigMap", "name")
            swap(value_from.get("secretKeyRef"), "Secret", "name")


def primary_workload(target: Mapping[str, Any], template: Mapping[str, Any], *, kind: str,
                     owner: Mapping[str, Any], revision: str, copied: Iterable[ConfigRef]) -> dict[str, Any]:
    """The ``-primary`` copy of an ``apps/v1`` workload running ``template``: its own selector,
    labels and revision annotation, every other part of the spec as the target has it."""
    selector = match_labels(target)
    spec = copy.deepcopy(dict(target.get("spec") or {}))
    spec["selector"] = {"matchLabels": primary_labels(selector, selector)}
    spec["template"] = primary_template(template, selector, copied, revision)
    meta = target.get("metadata") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": primary_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {**primary_labels(meta.get("labels") or {}, selector), **MANAGED_BY},
            "annotations": {REVISION_ANNOTATION: revision},
            "ownerReferences": [dict(owner)],
        },
        "spec": spec,
    }


def template_patch(target: Mapping[str, Any], template: Mapping[str, Any], revision: str,
                   copied: Iterable[ConfigRef]) -> dict[str, Any]:
    """Merge patch making an existing primary run ``template``, and nothing else of its spec."""
    return {"metadata": {"annotations": {REVISION_ANNOTATION: revision}},
            "spec": {"template": primary_template(template, match_labels(target), copied, revision)}}


def config_copy(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    """``<name>-primary`` copy of a ConfigMap or Secret, so a config change reaches the canary
    only: the primary keeps reading the copy taken at its last promotion."""
    # Only the payload is copied: the source's labels and annotations carry GitOps tracking
    # (Argo CD, Flux) that would make those tools prune the copy, and a copied finalizer could
    # block its deletion.
    source_meta = obj.get("metadata") or {}
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k in _PAYLOAD_FIELDS}
    out["metadata"] = {
        "name": primary_name(source_meta["name"]),
        "namespace": source_meta.get("namespace"),
        "labels": dict(MANAGED_BY),
        "ownerReferences": [dict(owner)],
    }
    return out


def discovered_ports(spec: CanarySpec, workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """With ``service.portDiscovery`` (Flagger's meaning), every container port of the pod
    template besides the main one, as Service ports; none without it."""
    if not spec.service.port_discovery:
        return []
    main = {spec.service.port, spec.service.target_port if spec.service.target_port is not None else spec.service.port}
    containers = ((((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])
    out: dict[int, dict[str, Any]] = {}
    for container in containers:
        for cp in container.get("ports") or []:
            number, name = cp.get("containerPort"), cp.get("name")
            if not isinstance(number, int) or number in main or name in main or number in out:
                continue
            out[number] = {"name": name or f"tcp-{number}", "port": number, "targetPort": number,
                           "protocol": cp.get("protocol") or "TCP"}
    return [out[n] for n in sorted(out)]


def service_bodies(spec: CanarySpec, namespace: str, selector: Mapping[str, str],
                   owner: Mapping[str, Any], discovered: Sequence[Mapping[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """The apex (selects primary pods), ``-primary`` and ``-canary`` Services, by name; the main
    port first, then ``discovered`` ones (:func:`discovered_ports`)."""
    apex = spec.service.name
    port: dict[str, Any] = {
        "name": spec.service.port_name,
        "port": spec.service.port,
        "targetPort": spec.service.target_port if spec.service.target_port is not None else spec.service.port,
        "protocol": "TCP",
    }
    if spec.service.app_protocol is not None:
        port["appProtocol"] = spec.service.app_protocol
    primary_sel = primary_labels(selector, selector)

    def body(name: str, sel: Mapping[str, str], custom: CustomMetadata) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {**custom.labels, **MANAGED_BY},
                                "ownerReferences": [dict(owner)]}
        if custom.annotations:
            meta["annotations"] = dict(custom.annotations)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": dict(sel), "ports": [dict(port), *map(dict, discovered)]},
        }

    return {
        apex: body(apex, primary_sel, spec.service.apex),
        primary_name(apex): body(primary_name(apex), primary_sel, spec.service.primary),
        f"{apex}{CANARY_SUFFIX}": body(f"{apex}{CANARY_SUFFIX}", selector, spec.service.canary),
    }


def service_matches(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    have, want = existing.get("spec") or {}, desired["spec"]
    if (have.get("selector") or {}) != want["selector"]:
        return False
    have_meta, want_meta = existing.get("metadata") or {}, desired["metadata"]
    # Only what the Canary asks for must be there; labels and annotations others add stay theirs.
    for part in ("labels", "annotations"):
        have_part = have_meta.get(part) or {}
        if any(have_part.get(k) != v for k, v in (want_meta.get(part) or {}).items() if k not in MANAGED_BY):
            return False
    return all(any(p.get("port") == want_port["port"]
                   and str(p.get("targetPort", p.get("port"))) == str(want_port["targetPort"])
                   and p.get("appProtocol") == want_port.get("appProtocol")
                   for p in have.get("ports") or [])
               for want_port in want["ports"])
