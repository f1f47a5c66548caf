"""Does the controller keep its Lease while a thousand Canaries keep its API workers busy?

Issue 8 saw the controller lose its own Lease 50 s after start at 1000 Canaries: the API server
answered Lease calls in milliseconds, but renewals were not sent for 8 s, queued behind every
other API call in the shared worker pool. This starts the local control plane (with enough kwok
Nodes for the pods), creates N Deployments with a Canary each, starts one controller and watches
its Lease from outside for a while: every renewal the API server stored, and the gaps between
them. The renew deadline is 10 s; a gap near it is a renewal that almost came too late.

Run: ``.venv/bin/python -m bench.lease_under_load [--canaries 1000] [--seconds 120]``.
``--source DIR`` runs the controller from another checkout (its ``canary`` package first on
PYTHONPATH), for a before/after figure. Exits 1 if the controller lost its Lease.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster.control_plane import ControlPlane
from e2e.crds.install import switch_flavour
from e2e.harness import app
from e2e.processes import free_port

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
LEASE = "canary-controller"
RENEW_DEADLINE_SECONDS = 10.0


class LeaseWatcher(threading.Thread):
    """Polls the Lease and records when each new renewal was first seen (local monotonic time)."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(daemon=True, name="lease-watcher")
        self.coordination = client.CoordinationV1Api(api)
        self.renewals: list[float] = []
        self.holders: set[str] = set()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        last: str | None = None
        while not self.stop_flag.wait(0.1):
            try:
                lease = self.coordination.read_namespaced_lease(LEASE, NAMESPACE, _request_timeout=5)
            except ApiException:
                continue
            spec = lease.spec
            renew = str(spec.renew_time) if spec is not None else None
            if spec is not None and renew and renew != last:
                self.renewals.append(time.monotonic())
                self.holders.add(str(spec.holder_identity))
                last = renew

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.renewals, self.renewals[1:])]


def _create_workloads(api: client.ApiClient, count: int) -> None:
    # Plain dicts as bodies, as kubectl sends them.
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    for i in range(count):
        name = f"app-{i:04d}"
        apps.create_namespaced_deployment(NAMESPACE, app.deployment(name, NAMESPACE, annotations=app.behaviour("1"),
                                                                    replicas=1))
        custom.create_namespaced_custom_object("canary.dev", "v1alpha1", NAMESPACE, "canaries",
                                               app.canary(name, NAMESPACE, interval="1m"))


def _phases(api: client.ApiClient) -> dict[str, int]:
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object("canary.dev", "v1alpha1", NAMESPACE,
                                                                             "canaries")
    counts: dict[str, int] = {}
    for item in listed.get("items", []):
        phase = str((item.get("status") or {}).get("phase") or "none")
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--source", type=Path, default=REPO, help="checkout whose canary package runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
        workdir = Path(tmp)
        # 110 pods per kwok Node: room for every target and primary pod.
        nodes = max(3, (2 * args.canaries) // 100 + 1)
        with ControlPlane.start(workdir / "cluster", nodes=nodes) as plane:
            api = plane.api_client()
            plane.install_manifests([REPO / "crds"])
            switch_flavour(api, "linkerd")
            began = time.monotonic()
            _create_workloads(api, args.canaries)
            print(f"created {args.canaries} Deployments and Canaries in {time.monotonic() - began:.0f}s", flush=True)

            env = {**os.environ, "PYTHONPATH": str(args.source.resolve())}
            log = (workdir / "controller.log").open("w")
            argv = [sys.executable, "-m", "canary", "run", "--kubeconfig", str(plane.kubeconfig),
                    "--namespace", NAMESPACE, "--lease-namespace", NAMESPACE,
                    "--prometheus-address", "http://127.0.0.1:9", "--metrics-port", str(free_port())]
            controller = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            watcher = LeaseWatcher(api)
            watcher.start()
            started = time.monotonic()
            peak_rss = 0.0
            try:
                while time.monotonic() - started < args.seconds and controller.poll() is None:
                    peak_rss = max(peak_rss, _rss_mib(controller.pid))
                    time.sleep(1)
                exited = controller.poll()
            finally:
                watcher.stop_flag.set()
                controller.terminate()
                try:
                    controller.wait(30)
                except subprocess.TimeoutExpired:
                    controller.kill()
            phases = _phases(api)

    gaps = watcher.gaps()
    print(f"\ncontroller from {args.source}, {args.canaries} Canaries, observed {args.seconds:.0f}s")
    print(f"  lease renewals seen:    {len(watcher.renewals)}")
    if gaps:
        ordered = sorted(gaps)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"  renewal gap median:     {statistics.median(gaps):.2f}s   p99: {p99:.2f}s   max: {max(gaps):.2f}s"
              f"   (renew deadline {RENEW_DEADLINE_SECONDS:.0f}s)")
    print(f"  controller exited:      {'no' if exited is None else f'yes, code {exited} (lost its lease?)'}")
    print(f"  controller peak RSS:    {peak_rss:.0f} MiB")
    print(f"  Canary phases at end:   {dict(sorted(phases.items()))}")
    return 0 if exited is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
