"""The configuration kwok starts with: its own fast Pod stages, except for deletion.

kwok's default ("fast") Pod delete stage removes a Pod the moment it gets a deletionTimestamp, so
a Pod's real HTTP server (:mod:`e2e.podnet` serves a Pod until its object is gone) stops before a
gateway such as Traefik has learnt that the endpoint left: requests still sent there fail. Real
Pods with a preStop sleep or a graceful shutdown keep serving through their grace period. Our
delete stage models that for the Pods that ask for it: a Pod annotated
``pod-delete.stage.kwok.x-k8s.io/delay: "5s"`` (the annotation kwok's own general stages read)
is deleted that long after its deletionTimestamp is set; every other Pod at once, as before.

Configuring any Pod stage stops kwok from loading its default Pod stages (all three), so the
ready and complete stages are passed too, exactly as the kwok module ships them (``build.sh``
copies them beside the binary). No Node stage is configured, so kwok still loads its default Node
stages, chosen by ``--node-lease-duration-seconds`` as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from e2e.cluster.binaries import KwokStages
from e2e.processes import E2ESetupError

POD_DELETE_DELAY_ANNOTATION = "pod-delete.stage.kwok.x-k8s.io/delay"
"""How long after its deletion starts kwok deletes a Pod (a Go duration: ``"5s"``); keep it within
the Pod's terminationGracePeriodSeconds, as a real shutdown is."""

_CONFIGURATION: dict[str, Any] = {
    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
    "kind": "KwokConfiguration",
    "options": {},
}

POD_DELETE_STAGE: dict[str, Any] = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "pod-delete"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchExpressions": [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
        },
        # A missing (or unparsable) annotation falls back to durationMilliseconds: 0, at once.
        # No jitterDurationFrom (kwok's general stage has one, up to the deletionTimestamp): kwok
        # adds a random part of the way from the delay to the jitter bound, so a Pod without the
        # annotation would linger a random part of its grace period (30 s by default).
        "delay": {
            "durationMilliseconds": 0,
            "durationFrom": {"expressionFrom": f'.metadata.annotations["{POD_DELETE_DELAY_ANNOTATION}"]'},
        },
        # As kwok's fast stage does: no kubelet is there to honour a finalizer.
        "next": {"finalizers": {"empty": True}, "delete": True},
    },
}


def _shipped_stage(path: Path, name: str) -> str:
    """The text of one of kwok's stage files, checked to be the Pod stage called ``name``."""
    try:
        text = path.read_text()
        stage = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise E2ESetupError(f"cannot read kwok's {name} stage from {path}: {exc}") from exc
    if not (
        isinstance(stage, dict)
        and stage.get("kind") == "Stage"
        and stage.get("metadata", {}).get("name") == name
        and stage.get("spec", {}).get("resourceRef", {}).get("kind") == "Pod"
    ):
        raise E2ESetupError(f"{path} is not kwok's Pod stage {name!r}; rebuild with e2e/cluster/build.sh")
    return text


def kwok_config_text(stages: KwokStages) -> str:
    """The multi-document file given to ``kwok --config``."""
    documents = [
        yaml.safe_dump(_CONFIGURATION, sort_keys=False),
        # Passed as text, not re-dumped: byte for byte what kwok would have embedded.
        _shipped_stage(stages.pod_ready, "pod-ready"),
        _shipped_stage(stages.pod_complete, "pod-complete"),
        yaml.safe_dump(POD_DELETE_STAGE, sort_keys=False),
    ]
    return "---\n".join(document if document.endswith("\n") else document + "\n" for document in documents)


def write_kwok_config(path: Path, stages: KwokStages) -> Path:
    path.write_text(kwok_config_text(stages))
    return path
