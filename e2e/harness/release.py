"""Driving and watching one release the way an on-call engineer would see it.

:class:`ReleaseWatcher` samples the Canary's status in the background (every 100 ms) and keeps
each distinct (phase, canaryWeight) in order, so a scenario can assert on the whole path a
release took (every step, no step skipped, no traffic to a canary after a rollback) and not only
on where it ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from e2e.harness import app
from e2e.harness.kube import Kube, wait_for
from e2e.harness.sampling import Recorder

SMI_GROUP = "split.smi-spec.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Sample:
    at: float
    phase: str
    weight: int
    revision: str
    failed_checks: int = 0


@dataclass(frozen=True)
class _Seen:
    phase: str
    weight: int
    revision: str
    failed_checks: int


@dataclass
class ReleaseWatcher:
    kube: Kube
    name: str
    _recorder: Recorder[_Seen] = field(init=False)

    def __post_init__(self) -> None:
        self._recorder = Recorder(self._read)

    def _read(self) -> _Seen:
        st = self.kube.status(self.name)
        return _Seen(str(st.get("phase")), int(st.get("canaryWeight") or 0), str(st.get("lastAppliedSpec") or ""),
                     int(st.get("failedChecks") or 0))

    def __enter__(self) -> ReleaseWatcher:
        self._recorder.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self._recorder.__exit__()

    @property
    def samples(self) -> list[Sample]:
        """Each distinct status seen, in order; a failed read is left out."""
        return [Sample(c.at, c.value.phase, c.value.weight, c.value.revision, c.value.failed_checks)
                for c in self._recorder.changes if c.value is not None]

    def weights(self) -> list[int]:
        """Distinct canary weights in the order they were seen (repeats collapsed)."""
        out: list[int] = []
        for s in self.samples:
            if not out or out[-1] != s.weight:
                out.append(s.weight)
        return out

    def advanced_after_a_failed_check(self) -> list[tuple[int, int]]:
        """(weight at the first failed check, a higher weight seen later in the same run): a
        failed check must halt advancement, so this is empty when the controller behaves."""
        out: list[tuple[int, int]] = []
        halted: dict[str, int] = {}
        for s in self.samples:
            if s.revision in halted and s.weight > halted[s.revision]:
                out.append((halted[s.revision], s.weight))
            if s.failed_checks > 0 and s.revision not in halted:
                halted[s.revision] = s.weight
        return out

    def phases(self) -> list[str]:
        out: list[str] = []
        for s in self.samples:
            if not out or out[-1] != s.phase:
                out.append(s.phase)
        return out


def install_app(kube: Kube, name: str, *, version: str = "1", replicas: int = 2, configmap: str | None = None,
                drain_seconds: int = 0, **canary_args: Any) -> None:
    """Create the Deployment and its Canary and wait until the controller has initialised them."""
    kube.create(app.deployment(name, kube.namespace, annotations=app.behaviour(version), replicas=replicas,
                               configmap=configmap, drain_seconds=drain_seconds))
    kube.create(app.canary(name, kube.namespace, **canary_args))
    kube.wait_for_phase(name, "Initialized", timeout=90)
    wait_for(lambda: kube.deployment(f"{name}-primary"), _ready, timeout=60, what=f"{name}-primary ready")


def _ready(dep: dict[str, Any]) -> bool:
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    return int(st.get("readyReplicas") or 0) >= int(spec.get("replicas") or 0) > 0


def ship(kube: Kube, name: str, version: str, *, error_rate: float = 0.0, latency_ms: int = 0,
         wait: bool = True) -> dict[str, Any]:
    """A new version of the app: a pod-template edit, as a GitOps sync would apply it.

    Waits until the controller has taken the new revision up (``status.lastAppliedSpec``
    changed), so that a phase read afterwards belongs to this release and not the last one.
    """
    before = kube.status(name).get("lastAppliedSpec")
    kube.patch_template_annotations(name, app.behaviour(version, error_rate=error_rate, latency_ms=latency_ms))
    if not wait:
        return {}
    return wait_for(lambda: kube.status(name), lambda st: st.get("lastAppliedSpec") != before,
                    timeout=30, what=f"the controller to start the release of {name} {version}")


def template_version(dep: dict[str, Any]) -> str | None:
    annotations = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(app.VERSION)
    return None if value is None else str(value)


def _quantity(value: Any) -> Decimal:
    number: Decimal = parse_quantity(str(value))  # type: ignore[no-untyped-call]
    return number


def route_shares(kube: Kube, apex: str, provider: str) -> dict[str, float]:
    """The route object's weights as shares of 1, per backend Service, read straight off the object.

    ``provider`` is ``gatewayapi`` or ``smi:VERSION``. The harness reads the raw object itself,
    independently of the controller's router code, so a router bug cannot hide here.
    """
    if provider == "gatewayapi":
        route = kube.custom_object(GATEWAY_GROUP, "v1", "httproutes", apex)
        if route is None:
            return {}
        # The weighted split is the last rule; A/B and session-affinity rules come before it.
        refs = route["spec"]["rules"][-1]["backendRefs"]
        raw = {r["name"]: Decimal(r.get("weight", 1)) for r in refs}
    else:
        version = provider.split(":", 1)[1]
        split = kube.custom_object(SMI_GROUP, version, "trafficsplits", apex)
        if split is None:
            return {}
        raw = {b["service"]: _quantity(b["weight"]) for b in split["spec"]["backends"]}
    total = sum(raw.values())
    return {k: float(v / total) if total else 0.0 for k, v in raw.items()}


def wait_for_rollback_applied(kube: Kube, apex: str, provider: str, *, timeout: float = 30) -> None:
    """Wait until a rollback the status already reports has reached the cluster.

    The controller writes ``phase: Failed`` before it moves the route and scales the canary down
    (so a crash in between is finished from the status), which means a reader can see the phase a
    moment before the route changes.
    """
    def state() -> tuple[dict[str, float], int]:
        return route_shares(kube, apex, provider), int(kube.deployment(apex)["spec"].get("replicas") or 0)

    wait_for(state, lambda s: s == ({f"{apex}-primary": 1.0, f"{apex}-canary": 0.0}, 0), timeout=timeout,
             what=f"all of {apex}'s traffic back on {apex}-primary and {apex} scaled to zero")
