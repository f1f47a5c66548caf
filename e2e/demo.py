"""`make demo`: the product's main job, end to end, on the local control plane.

Builds (first time only) or reuses the control plane, starts it with the simulated mesh and
Prometheus, starts the controller, deploys a sample app with its Canary, then ships a healthy
version (promoted) and a faulty one (rolled back), printing every step as the controller takes
it, and ends with a summary of both releases. After each release it draws the release with
`canary report` (the CLI, against the API server) and prints where the SVG is.

By default the requests go through a real Traefik: real HTTP requests to real servers at the
pods' own addresses, routed by the HTTPRoute the controller writes, and judged from Traefik's
own metrics. ``--gateway mesh`` (``make demo GATEWAY=mesh``) runs the same releases through the
simulated mesh instead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.domain.event_facts import FACTS_ANNOTATION, EventFacts
from e2e.cluster import binaries_missing
from e2e.harness.controller import Controller, ControllerOptions
from e2e.harness.environment import Environment, environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship, template_version
from e2e.harness.traffic import requests_by_canary_weight
from e2e.traefik.load import Load

APP = "podinfo"
NAMESPACE = "demo"
RPS = 50


@dataclass
class ReleaseSummary:
    version: str
    outcome: str
    seconds: float
    weights: list[int]
    message: str
    last_checks: str
    #: The release drawn by `canary report`.
    report: Path | None = None


def _say(text: str) -> None:
    print(text, flush=True)


def _checks(status: dict[str, Any]) -> str:
    parts = []
    for check in status.get("checks") or []:
        value = check.get("value")
        shown = "no data" if value is None else (f"{float(value):.1f}%" if check["name"] == "request-success-rate"
                                                 else f"{float(value):.0f} ms")
        if check.get("kind", "metric") != "metric" and value is None:
            shown = check.get("verdict", "")
        parts.append(f"{check['name']} {shown} ({check.get('verdict', '?')})")
    return ", ".join(parts) or "-"


class Traffic:
    """Where the demo's requests go and who counts them: the simulated mesh (the default)."""

    name = "the simulated mesh"

    def __init__(self, env: Environment) -> None:
        self.env = env

    def start(self, kube: Kube) -> None:
        self.env.mesh.client.set_load(NAMESPACE, APP, RPS)
        self.env.mesh.client.reset_stats(NAMESPACE, APP)

    def canary_args(self) -> dict[str, Any]:
        return {}

    def drain_seconds(self) -> int:
        """How long a deleted Pod keeps answering (see :func:`e2e.harness.app.deployment`)."""
        return 0

    def controller_mesh(self) -> str:
        return "linkerd"

    def new_release(self) -> None:
        self.env.mesh.client.reset_stats(NAMESPACE, APP)

    def weight_ended(self, weight: int) -> str:
        """What the data plane did while the canary weight was ``weight``: its real share of requests."""
        requests = requests_by_canary_weight(self.env.mesh.client.stats(NAMESPACE, APP),
                                             f"{APP}-canary").get(weight, {})
        return _share_line(weight, requests.get(f"{APP}-canary", 0), sum(requests.values()), "the mesh")

    def stop(self) -> None:
        self.env.mesh.client.stop_all_load(NAMESPACE)


class TraefikTraffic(Traffic):
    """Real requests through a real Traefik, counted by Traefik's own metrics."""

    name = "Traefik (real HTTP, routed by the controller's HTTPRoute)"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.traefik = env.traefik()
        self.pods = env.pod_network()
        self.load: Load | None = None
        self.host = f"{APP}.{NAMESPACE}.example"
        self.counted = self._counts()

    def _counts(self) -> dict[str, int]:
        return self.traefik.requests_by_backend(NAMESPACE, (f"{APP}-primary", f"{APP}-canary"))

    def start(self, kube: Kube) -> None:
        self.pods.wait_serving(NAMESPACE, {"app": f"{APP}-primary"}, 2)
        self.load = Load(self.traefik.web_url, host=self.host, rps=RPS).start()
        self.counted = self._counts()

    def canary_args(self) -> dict[str, Any]:
        return {"provider": "gatewayapi", "service_options": {
            "gatewayRefs": [{"name": self.traefik.gateway_name, "namespace": self.traefik.gateway_namespace}],
            "hosts": [self.host]}}

    def controller_mesh(self) -> str:
        return "traefik"

    def drain_seconds(self) -> int:
        # Traefik applies endpoint changes up to its provider throttle (2 s) late: a Pod that
        # vanished at once would be sent requests for that long, as without a preStop sleep.
        return 5

    def new_release(self) -> None:
        self.counted = self._counts()

    def weight_ended(self, weight: int) -> str:
        now = self._counts()
        delta = {k: now[k] - self.counted.get(k, 0) for k in now}
        self.counted = now
        return _share_line(weight, delta[f"{APP}-canary"], sum(delta.values()), "Traefik")

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()


def _share_line(weight: int, canary: int, routed: int, who: str) -> str:
    if not routed:
        return ""
    return f"  (at {weight}% {who} sent {canary / routed:.0%} of {routed} requests to the canary)"


def follow_release(traffic: Traffic, kube: Kube, version: str, started: float, timeout: float = 180) -> ReleaseSummary:
    """Print each change of phase or weight, with the checks behind it, until the release ends."""
    seen: tuple[str, int, str] | None = None
    weights: list[int] = []
    left_start = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = kube.status(APP)
        phase, weight = str(st.get("phase")), int(st.get("canaryWeight") or 0)
        key = (phase, weight, str(st.get("lastAnalysisTime")))
        if key != seen:
            seen = key
            if weights and weights[-1] != weight:
                served = traffic.weight_ended(weights[-1])
                if weights[-1] > 0 and served:
                    _say(served)
            if not weights or weights[-1] != weight:
                weights.append(weight)
            _say(f"  {time.monotonic() - started:6.1f}s  {phase:<16} canary {weight:>3}%   {_checks(st)}")
        if phase in ("Progressing", "WaitingPromotion", "Promoting", "Finalising"):
            left_start = True
        if left_start and phase in ("Succeeded", "Failed"):
            return ReleaseSummary(version, phase, time.monotonic() - started, weights,
                                  str(st.get("message") or ""), _checks(st))
        time.sleep(0.25)
    raise SystemExit(f"demo: release {version} did not finish within {timeout:.0f}s")


def _final_event_recorded(kube: Kube, revision: str, phase: str) -> bool:
    """Whether the Event that ends the release (its facts in ``phase`` for ``revision``) is in;
    the controller posts it after writing the status the demo saw."""
    events = kube.core.list_namespaced_event(
        kube.namespace, field_selector=f"involvedObject.kind=Canary,involvedObject.name={APP}").items
    for event in events:
        raw = (event.metadata.annotations or {}).get(FACTS_ANNOTATION)
        facts = EventFacts.from_annotation(raw) if raw else None
        if facts is not None and facts.revision == revision and facts.phase is not None and facts.phase.value == phase:
            return True
    return False


def write_report(env: Environment, kube: Kube, reports: Path, summary: ReleaseSummary) -> Path:
    """The release drawn by `canary report`, run as an operator would, into ``reports``."""
    status = kube.status(APP)
    revision = str(status.get("lastAppliedSpec") or "")
    wait_for(lambda: _final_event_recorded(kube, revision, summary.outcome), bool, timeout=30,
             what=f"the {summary.outcome} Event of revision {revision}")
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"{APP}-{summary.version.split()[0]}.svg"
    argv = [sys.executable, "-m", "canary", "report", APP, "-n", kube.namespace, "--kubeconfig", str(env.kubeconfig),
            "--revision", revision, "-o", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo: canary report failed ({done.returncode}): {done.stderr.strip()}")
    return path


def run_demo(env: Environment, traffic: Traffic, reports: Path | None = None) -> list[ReleaseSummary]:
    """The two releases; each one's `canary report` SVG goes to ``reports`` (default: the workdir's reports/)."""
    reports = reports or env.workdir / "reports"
    kube = Kube(env.api, NAMESPACE)
    kube.create_namespace()
    controller = Controller(ControllerOptions(kubeconfig=env.controller_kubeconfig(NAMESPACE), namespace=NAMESPACE,
                                              prometheus_url=env.prometheus.url, mesh=traffic.controller_mesh()),
                            env.workdir / "logs", env.api)
    controller.start()
    try:
        _say(f"\n==> controller running (log: {controller.process.log_path if controller.process else '-'})")
        _say(f"==> deploying {APP} v1 with a Canary: 20% more traffic every 3s up to 60%, success rate >= 99%, "
             "p99 <= 200 ms, rollback after 2 failed checks")
        install_app(kube, APP, interval="3s", step_weight=20, max_weight=60, threshold=2,
                    drain_seconds=traffic.drain_seconds(), **traffic.canary_args())
        traffic.start(kube)
        _say(f"==> {RPS} requests/s flowing to {APP}.{NAMESPACE} through {traffic.name}; primary runs v1")

        summaries = []
        _say("\n==> release v2 (healthy)")
        started = time.monotonic()
        ship(kube, APP, "2")
        summaries.append(follow_release(traffic, kube, "v2 (healthy)", started))
        summaries[-1].report = write_report(env, kube, reports, summaries[-1])
        _say(f"  report: {summaries[-1].report}")

        _say("\n==> release v3 (faulty: 20% of requests fail, +300 ms)")
        traffic.new_release()
        started = time.monotonic()
        ship(kube, APP, "3", error_rate=0.2, latency_ms=300)
        summaries.append(follow_release(traffic, kube, "v3 (faulty)", started))
        summaries[-1].report = write_report(env, kube, reports, summaries[-1])
        _say(f"  report: {summaries[-1].report}")
        primary = template_version(kube.deployment(f"{APP}-primary"))
        _say(f"\n==> the primary runs v{primary}")
        return summaries
    finally:
        traffic.stop()
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None, help="where logs and state go (default: a temp dir)")
    parser.add_argument("--gateway", choices=("traefik", "mesh"), default="traefik",
                        help="route the demo's requests through a real Traefik (default) or the simulated mesh")
    args = parser.parse_args(argv)
    missing = binaries_missing()
    if missing:
        _say(f"==> first run on this machine: building {', '.join(missing)} from the Go module proxy. "
             "This takes about 15-30 minutes on 2 cores (Traefik alone about 6), once; later runs start in seconds.")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="canary-demo-"))
    begun = time.monotonic()
    with environment(workdir) as env:
        figures = ", ".join(f"{k} {v:.1f}s" for k, v in env.timings.items())
        traffic = TraefikTraffic(env) if args.gateway == "traefik" else Traffic(env)
        _say(f"==> local control plane, Prometheus and {traffic.name} ready ({figures})")
        summaries = run_demo(env, traffic)
    _say("\n==> summary")
    for s in summaries:
        steps = " -> ".join(f"{w}%" for w in s.weights)
        _say(f"  {s.version:<14} {s.outcome:<10} in {s.seconds:5.1f}s   weights {steps}")
        _say(f"  {'':<14} last checks: {s.last_checks}")
        if s.message:
            _say(f"  {'':<14} {s.message}")
        if s.report:
            _say(f"  {'':<14} report: {s.report}")
    _say(f"\ndemo finished in {time.monotonic() - begun:.0f}s; logs in {workdir}")
    ok = [s.outcome for s in summaries] == ["Succeeded", "Failed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
