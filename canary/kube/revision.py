"""Revisions: what counts as "a new version" of the target.

A revision is a hash of the pod template together with the data of every ConfigMap and Secret
the template mounts or reads, so a config-only change starts a release exactly like an image
change, and reverting either restores the previous hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Annotation on the primary workload naming the revision it runs.
REVISION_ANNOTATION = "canary.dev/revision"


@dataclass(frozen=True, order=True)
class ConfigRef:
    kind: str  # "ConfigMap" or "Secret"
    name: str


def config_refs(pod_spec: Mapping[str, Any]) -> frozenset[ConfigRef]:
    """Every ConfigMap and Secret a pod spec uses, through volumes, projections and env."""
    return frozenset(_walk_refs(pod_spec))


def _walk_refs(pod_spec: Mapping[str, Any]) -> Iterator[ConfigRef]:
    for volume in pod_spec.get("volumes") or []:
        if (cm := volume.get("configMap")) and cm.get("name"):
            yield ConfigRef("ConfigMap", cm["name"])
        if (secret := volume.get("secret")) and secret.get("secretName"):
            yield ConfigRef("Secret", secret["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (cm := source.get("configMap")) and cm.get("name"):
                yield ConfigRef("ConfigMap", cm["name"])
            if (secret := source.get("secret")) and secret.get("name"):
                yield ConfigRef("Secret", secret["name"])
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for source in container.get("envFrom") or []:
            if (cm := source.get("configMapRef")) and cm.get("name"):
                yield ConfigRef("ConfigMap", cm["name"])
            if (secret := source.get("secretRef")) and secret.get("name"):
                yield ConfigRef("Secret", secret["name"])
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            if (cm := value_from.get("configMapKeyRef")) and cm.get("name"):
                yield ConfigRef("ConfigMap", cm["name"])
            if (secret := value_from.get("secretKeyRef")) and secret.get("name"):
                yield ConfigRef("Secret", secret["name"])


def data_digest(obj: Mapping[str, Any]) -> str:
    """Digest of a ConfigMap's or Secret's payload; the cache keeps only this, never the data."""
    payload = {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}
    return _digest(payload)


def revision_of(template: Mapping[str, Any], config_digests: Mapping[ConfigRef, str | None]) -> str:
    """The revision of a pod template given the digests of the configs it uses (None: absent)."""
    meta = template.get("metadata") or {}
    payload = {
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "spec": template.get("spec") or {},
        "configs": {f"{ref.kind}/{ref.name}": config_digests.get(ref) for ref in sorted(config_digests)},
    }
    return _digest(payload)[:16]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
