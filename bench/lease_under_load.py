"""Does the controller keep its Lease while a thousand Canaries keep its API workers busy?

Issue 8 saw the controller lose its own Lease 50 s after start at 1000 Canaries: the API server
answered Lease calls in milliseconds, but renewals were not sent for 8 s, queued behind every
other API call in the shared worker pool. This starts the local control plane (with enough kwok
Nodes for the pods), creates N Deployments with a Canary each, starts one controller and watches
its Lease from outside for a while: every renewal the API server stored, and the gaps between
them. The renew deadline is 10 s; a gap near it is a renewal that almost came too late.

Run: ``.venv/bin/python -m bench.lease_under_load [--canaries 1000] [--seconds 120]``.
``--source DIR`` runs the controller from another checkout (started in it, see
``bench.fleet.start_controller``), for a before/after figure. Exits 1 if the controller lost its Lease.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.fleet import (REPO, canary_phases, create_workloads, nodes_for, phase_counts, rss_mib, start_controller,
                         stop_controller)
from e2e.cluster.control_plane import ControlPlane
from e2e.crds.install import switch_flavour
from e2e.harness import app
from e2e.processes import free_port

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--source", type=Path, default=REPO, help="checkout whose canary package runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
        workdir = Path(tmp)
        # Room for every target and primary pod.
        with ControlPlane.start(workdir / "cluster", nodes=nodes_for(2 * args.canaries)) as plane:
            api = plane.api_client()
            plane.install_manifests([REPO / "crds"])
            switch_flavour(api, "linkerd")
            began = time.monotonic()
            create_workloads(api, NAMESPACE, args.canaries,
                             lambda name, namespace: app.canary(name, namespace, interval="1m"))
            print(f"created {args.canaries} Deployments and Canaries in {time.monotonic() - began:.0f}s", flush=True)

            with (workdir / "controller.log").open("w") as log:
                controller = start_controller(args.source, kubeconfig=plane.kubeconfig, namespace=NAMESPACE,
                                              prometheus_url="http://127.0.0.1:9", metrics_port=free_port(), log=log)
            watcher = LeaseWatcher(api)
            watcher.start()
            started = time.monotonic()
            peak_rss = 0.0
            try:
                while time.monotonic() - started < args.seconds and controller.poll() is None:
                    peak_rss = max(peak_rss, rss_mib(controller.pid))
                    time.sleep(1)
                exited = controller.poll()
            finally:
                watcher.stop_flag.set()
                stop_controller(controller)
            phases = phase_counts(canary_phases(api, NAMESPACE))

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
    print(f"  Canary phases at end:   {phases}")
    return 0 if exited is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
