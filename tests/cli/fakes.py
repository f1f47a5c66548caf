"""A hand-written CanaryClient that keeps Canaries in memory and can play the controller."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from canary.cli.client import CanaryClient, WatchEvent
from canary.cli.errors import CanaryNotFound
from canary.domain.status import Annotation

NOW = datetime(2024, 5, 1, 10, 3, 20, tzinfo=timezone.utc)

ANALYSIS: dict[str, Any] = {
    "interval": "1m",
    "threshold": 5,
    "maxWeight": 50,
    "stepWeight": 10,
    "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500}},
    ],
}


def canary(
    name: str = "podinfo",
    namespace: str = "default",
    status: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": dict(ANALYSIS if analysis is None else analysis),
        },
        "status": dict(status or {}),
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: Plays the controller: given the Canary after a patch, returns its next state, or None.
Controller = Callable[[dict[str, Any]], dict[str, Any] | None]


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


class FakeCanaryClient:
    def __init__(
        self,
        *objs: dict[str, Any],
        clock: FakeClock | None = None,
        controller: Controller | None = None,
        default_namespace: str = "default",
    ) -> None:
        self.store = {_key(o): copy.deepcopy(o) for o in objs}
        self.clock = clock or FakeClock()
        self.controller = controller
        self._default_namespace = default_namespace
        #: Events the next watch delivers after replaying the current state.
        self.pending: list[WatchEvent] = []
        self.patches: list[tuple[str, str, dict[str, str | None]]] = []
        self.watches: list[tuple[str | None, str | None, float]] = []
        #: Kubernetes Events by the Canary they are about, as list_events returns them.
        self.events: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.event_lists: list[tuple[str, str, str | None]] = []

    @property
    def default_namespace(self) -> str:
        return self._default_namespace

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.store[namespace, name])
        except KeyError:
            raise CanaryNotFound(namespace, name) from None

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (ns, _), o in sorted(self.store.items()) if namespace in (None, ns)]

    def patch_annotations(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> dict[str, Any]:
        obj = self.get(namespace, name)
        current = obj["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        self.store[namespace, name] = obj
        self.patches.append((namespace, name, dict(annotations)))
        if self.controller is not None:
            reacted = self.controller(copy.deepcopy(obj))
            if reacted is not None:
                self.pending.append(WatchEvent(type="MODIFIED", object=reacted))
        return copy.deepcopy(obj)

    def list_events(self, namespace: str, name: str, uid: str | None = None) -> list[dict[str, Any]]:
        self.event_lists.append((namespace, name, uid))
        return copy.deepcopy(self.events.get((namespace, name), []))

    def emit(self, kind: str, obj: dict[str, Any]) -> None:
        self.pending.append(WatchEvent(type=kind, object=copy.deepcopy(obj)))

    def watch(self, namespace: str | None, name: str | None, timeout: float) -> Iterator[WatchEvent]:
        self.watches.append((namespace, name, timeout))
        for (ns, n), obj in sorted(self.store.items()):
            if namespace in (None, ns) and name in (None, n):
                yield WatchEvent(type="ADDED", object=copy.deepcopy(obj))
        while self.pending:
            event = self.pending.pop(0)
            key = _key(event["object"])
            if event["type"] == "DELETED":
                self.store.pop(key, None)
            else:
                self.store[key] = copy.deepcopy(event["object"])
            yield event
        # Nothing more happens: the API server ends the watch when its timeout is up.
        self.clock.advance(timeout)


def confirming_controller(phase_after: Mapping[str, str] | None = None) -> Controller:
    """Records every on-call annotation present as handled, and sets the phase per action."""
    phases = dict(phase_after or {})

    def react(obj: dict[str, Any]) -> dict[str, Any]:
        annotations = obj["metadata"].get("annotations") or {}
        status = obj.setdefault("status", {})
        handled = {a.short: annotations[a.value] for a in Annotation if a.value in annotations}
        status["handledAnnotations"] = handled
        for short, phase in phases.items():
            if short in handled:
                status["phase"] = phase
        return obj

    return react


def silent_controller(obj: dict[str, Any]) -> None:
    return None


class Connections:
    """The CLI's ``connect``: hands out ``client`` and records the kubeconfig and context asked for."""

    def __init__(self, client: FakeCanaryClient) -> None:
        self.client = client
        self.calls: list[tuple[str | None, str | None]] = []

    def __call__(self, kubeconfig: str | None, context: str | None) -> CanaryClient:
        self.calls.append((kubeconfig, context))
        return self.client
