"""Kubernetes Events on the Canary: the notifier every other reader starts from.

An Event is written in the reconciliation pass itself, before the pass's actions, rather than
queued like chat posts: Events are the record ``kubectl describe``, ``canary status`` and
``canary report`` read, in the order things happened, and one API call to the server the
controller already depends on does not stall a release the way a dead chat webhook could. A
failed write is logged and the release goes on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from canary.errors import DeliveryError, NotFound
from canary.domain.event_facts import FACTS_ANNOTATION
from canary.kube.api import CANARY_GROUP, CANARY_VERSION, MERGE_PATCH, KubeApi
from canary.notify.base import Notice

__all__ = ["COMPONENT", "EventGone", "KubernetesEvents", "event_body", "fold_patch"]

COMPONENT = "canary-controller"
#: The API server refuses longer Event messages.
_MESSAGE_LIMIT = 1024


def _timestamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _facts(notice: Notice) -> str:
    return replace(notice.facts, time=notice.time).to_annotation()


def event_body(notice: Notice, count: int = 1) -> dict[str, Any]:
    """The core/v1 Event for ``notice``, with its facts as the ``canary.dev/facts`` annotation,
    saying it happened ``count`` times (more than once: repeats whose Event expired unwritten)."""
    now = _timestamp(notice.time)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{notice.name}.", "namespace": notice.namespace,
                     "annotations": {FACTS_ANNOTATION: _facts(notice)}},
        "involvedObject": {"apiVersion": f"{CANARY_GROUP}/{CANARY_VERSION}", "kind": "Canary",
                           "name": notice.name, "namespace": notice.namespace, "uid": notice.uid},
        "reason": notice.reason,
        "message": notice.message[:_MESSAGE_LIMIT],
        "type": "Warning" if notice.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": count,
    }


def fold_patch(notice: Notice, count: int) -> dict[str, Any]:
    """The merge patch that makes an Event say it happened ``count`` times, the latest being
    ``notice``: its time, and its facts, so ``canary report`` and anyone reading the annotation
    see the latest occurrence (``firstTimestamp`` keeps when the series began)."""
    return {"metadata": {"annotations": {FACTS_ANNOTATION: _facts(notice)}},
            "count": count, "lastTimestamp": _timestamp(notice.time)}


class EventGone(DeliveryError):
    """The Event to fold into no longer exists (the API server expires Events, by default after
    an hour): the occurrence needs an Event of its own."""


class KubernetesEvents:
    system = "kubernetes"
    destination = "kubernetes"
    attempts = 1

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def post(self, notice: Notice) -> None:
        await self.create(notice)

    async def create(self, notice: Notice, count: int = 1) -> str | None:
        """Record ``notice`` as a new Event; returns the Event's name (None: the answer did not
        say, and a repeat will be a new Event)."""
        try:
            created = await self.api.call(self.api.core.create_namespaced_event, notice.namespace,
                                          event_body(notice, count))
        except Exception as exc:  # noqa: BLE001 - API and transport errors alike: the Event is lost, not the pass
            raise DeliveryError(f"Event {notice.reason} not recorded: {exc}") from exc
        name = (self.api.to_dict(created).get("metadata") or {}).get("name")
        return str(name) if name else None

    async def fold(self, name: str, notice: Notice, count: int) -> None:
        """Make the Event ``name`` say it happened ``count`` times, the latest being ``notice``."""
        try:
            await self.api.call(self.api.core.patch_namespaced_event, name, notice.namespace,
                                fold_patch(notice, count), _content_type=MERGE_PATCH)
        except NotFound as exc:
            raise EventGone(f"Event {name} ({notice.reason}) no longer exists: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - as in create: the count is lost, not the pass
            raise DeliveryError(f"Event {name} ({notice.reason}) not updated: {exc}") from exc
