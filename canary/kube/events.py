"""Kubernetes Events on the Canary: the notifier every other reader starts from.

An Event is written in the reconciliation pass itself, before the pass's actions, rather than
queued like chat posts: Events are the record ``kubectl describe``, ``canary status`` and
``canary report`` read, in the order things happened, and one API call to the server the
controller already depends on does not stall a release the way a dead chat webhook could. A
failed write is logged and the release goes on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from canary.errors import DeliveryError
from canary.domain.event_facts import FACTS_ANNOTATION
from canary.kube.api import CANARY_GROUP, CANARY_VERSION, KubeApi
from canary.notify.base import Notice

__all__ = ["COMPONENT", "KubernetesEvents", "event_body"]

COMPONENT = "canary-controller"
#: The API server refuses longer Event messages.
_MESSAGE_LIMIT = 1024


def event_body(notice: Notice) -> dict[str, Any]:
    """The core/v1 Event for ``notice``, with its facts as the ``canary.dev/facts`` annotation."""
    now = notice.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{notice.name}.", "namespace": notice.namespace,
                     "annotations": {FACTS_ANNOTATION: replace(notice.facts, time=notice.time).to_annotation()}},
        "involvedObject": {"apiVersion": f"{CANARY_GROUP}/{CANARY_VERSION}", "kind": "Canary",
                           "name": notice.name, "namespace": notice.namespace, "uid": notice.uid},
        "reason": notice.reason,
        "message": notice.message[:_MESSAGE_LIMIT],
        "type": "Warning" if notice.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class KubernetesEvents:
    system = "kubernetes"
    destination = "kubernetes"
    attempts = 1

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def post(self, notice: Notice) -> None:
        try:
            await self.api.call(self.api.core.create_namespaced_event, notice.namespace, event_body(notice))
        except Exception as exc:  # noqa: BLE001 - API and transport errors alike: the Event is lost, not the pass
            raise DeliveryError(f"Event {notice.reason} not recorded: {exc}") from exc
