"""The controller under test, run as a real process (`python -m canary run`) against the API server.

One controller per scenario, watching only the scenario's namespace and holding its leader Lease
there: scenarios cannot disturb each other, and a scenario can SIGKILL its controller and start
another one, as a crash and a restart by the Deployment would. Several controllers in one
namespace share that Lease, as replicas of one Deployment do (``e2e/harness/replicas.py``).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.processes import ManagedProcess, free_port, spawn, wait_until

#: The Lease the controller holds in its namespace (``--lease-namespace``; the name is its default).
LEASE_NAME = "canary-controller"
#: How a refused request shows in the controller's log: the API server's own message for a 403
#: ("... is forbidden: User ... cannot patch resource ..."), which our errors and kopf's carry,
#: and kopf's warning when it gives up a watch it may not open. Some refusals are only logged
#: (an Event not posted, a Gateway's features not checked), so the harness reads the log.
DENIED = re.compile(r"is forbidden: User|Not enough permissions")


@dataclass
class ControllerOptions:
    kubeconfig: Path
    namespace: str
    prometheus_url: str
    mesh: str = "linkerd"
    default_provider: str | None = None
    metrics_source: str | None = None
    shard_buckets: int | None = None
    """``--shard-buckets``: the replicas share the Canaries over bucket Leases instead of one leading."""
    log_level: str = "debug"
    """Debug by default, for the failure report; a scenario with thousands of Canaries says info,
    as kopf's debug lines for them cost more CPU than the controller's work."""


def _argv(opts: ControllerOptions, metrics_port: int) -> list[str]:
    argv = [
        sys.executable, "-m", "canary", "run",
        "--kubeconfig", str(opts.kubeconfig),
        "--namespace", opts.namespace,
        "--prometheus-address", opts.prometheus_url,
        "--mesh", opts.mesh,
        "--metrics-port", str(metrics_port),
        "--lease-namespace", opts.namespace,
        "--log-level", opts.log_level,
    ]
    if opts.default_provider:
        argv += ["--default-provider", opts.default_provider]
    if opts.metrics_source:
        argv += ["--metrics-source", opts.metrics_source]
    if opts.shard_buckets:
        argv += ["--shard-buckets", str(opts.shard_buckets)]
    return argv


@dataclass
class Controller:
    options: ControllerOptions
    log_dir: Path
    api: client.ApiClient
    process: ManagedProcess | None = None
    starts: int = 0
    metrics_port: int = 0
    name: str = ""
    """Tells replicas in one namespace apart in log file names; empty for a lone controller."""
    logs: list[Path] = field(default_factory=list)
    """The log file of every start, in order."""

    def start(self, *, wait_for_lease: bool = True) -> Controller:
        """Start the process; by default return once it holds the Lease and kopf has listed.

        ``wait_for_lease=False`` is for a replica that joins while another leads: it returns once
        the process serves /readyz, which a replica that does not lead answers at once.
        """
        self.starts += 1
        self.metrics_port = free_port()
        replica = f"-{self.name}" if self.name else ""
        log = self.log_dir / f"controller-{self.options.namespace}{replica}-{self.starts}.log"
        self.logs.append(log)
        self.process = spawn("controller", _argv(self.options, self.metrics_port), log_path=log)
        if wait_for_lease:
            # A restarted controller waits for its dead predecessor's Lease to expire (15 s), as
            # a restarted Pod would; then /readyz turns true once kopf has listed every resource.
            wait_until(self._leading, timeout=60, what="the controller to acquire its Lease",
                       process=self.process, interval=0.2)
        wait_until(self._ready, timeout=60, what="the controller to answer /readyz",
                   process=self.process, interval=0.2)
        return self

    @property
    def identity(self) -> str:
        # canary.kube.leader.default_identity: hostname and pid of the controller process.
        assert self.process is not None
        return f"{socket.gethostname()}_{self.process.pid}"

    def _leading(self) -> bool:
        return lease_holder(self.api, self.options.namespace) == self.identity

    def holds_lease(self) -> bool:
        """True when the Lease names this process as its holder (whether or not it is running)."""
        return self.process is not None and self._leading()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2) as resp:
            return int(resp.status) == 200

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a node loss would."""
        if self.process is not None:
            self.process.kill()

    def pause(self) -> None:
        """SIGSTOP, as a frozen node, a VM migration or CPU throttling would: every thread stops,
        sockets stay open, and nothing the process does can tell it was stopped."""
        if self.process is not None:
            self.process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`: the process goes on from the instruction it stopped at."""
        if self.process is not None:
            self.process.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            # A paused process would sit on the SIGTERM until the SIGKILL ten seconds later.
            self.resume()
            self.process.stop()

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines) if self.process else "(never started)"

    def denied_requests(self, excused: Sequence[tuple[datetime, datetime | None]] = ()) -> list[str]:
        """Lines of any of its logs saying the API server refused a request for lack of RBAC,
        but for those logged within one of the ``excused`` windows (from, until; None: still
        open): a restarted kube-apiserver serves before its RBAC authorizer has read the Roles
        back and refuses everyone meanwhile, which is the API server's doing, not the chart's."""
        return [f"{log.name}: {line}" for log in self.logs if log.is_file()
                for line in log.read_text(errors="replace").splitlines()
                if DENIED.search(line) and not logged_within(line, excused)]


def logged_within(line: str, windows: Sequence[tuple[datetime, datetime | None]]) -> bool:
    """Whether the JSON log ``line``'s timestamp falls in one of ``windows``; a line without one
    does not."""
    if not windows:
        return False
    try:
        stamp = datetime.fromisoformat(json.loads(line)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    return any(start <= stamp and (until is None or stamp <= until) for start, until in windows)


def lease_holder(api: client.ApiClient, namespace: str, name: str = LEASE_NAME) -> str | None:
    """The ``holderIdentity`` of the controller's Lease in ``namespace``; None when free or absent."""
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    holder = lease.spec.holder_identity if lease.spec else None
    return str(holder) if holder else None
