"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (which plays the kubelet of a few fake Nodes).

Everything a start needs is created fresh under one work directory::

    workdir/
      pki/               CA, serving and client certificates, service-account keys
      kubeconfig         admin (system:masters)
      kubeconfigs/       one per component, each with its own identity
      etcd/              etcd's data
      logs/<name>.log    one log per component (the previous start's are in logs.previous/)
      audit/audit.log    the API server's audit log of every write (JSON lines; see audit.py)
      state.json         pids, the API server URL and the kubeconfig path

A plane started with ``detach=True`` outlives the Python process that started it (``make
cluster-up``); :meth:`ControlPlane.stop_detached` stops it later from ``state.json``. Otherwise
every process dies with the thread that started it, even if that process is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import dynamic as k8s_dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from e2e.cluster.audit import AUDIT_LOG, audit_flags
from e2e.cluster.binaries import Binaries, find_binaries
from e2e.cluster.kubeconfig import write_kubeconfig
from e2e.cluster.kwok_config import write_kwok_config
from e2e.cluster.pki import FRONT_PROXY_CLIENT_NAME, ClusterPKI, KeyPair, generate_pki
from e2e.cluster.pod_cidr import PodCidrLease, kwok_cidr, lease_pod_cidr, reclaim_stale
from e2e.processes import E2ESetupError, ManagedProcess, free_port, spawn, start_ticks, wait_until

# Three Services per Canary: the scale bench's 1000 Canaries and the sharding scenario's 3000 need
# thousands of ClusterIPs, so a /16 (the first address, 10.0.0.1, is still ``default/kubernetes``).
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/16"
# kwok's default pod CIDR (10.0.0.1/24) overlaps the service range, and pod IPs that look like
# ClusterIPs would make EndpointSlices confusing to read: each plane leases its own /20 of
# 10.244.0.0/16 instead (e2e.cluster.pod_cidr), so parallel runs never share a pod address.
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FIELD_MANAGER = "canary-e2e"
NODE_NAME_PREFIX = "kwok-node-"
# Nothing listens on these Node addresses (there is no kubelet, so `kubectl logs/exec` do not
# work); they exist so that `kubectl get nodes -o wide` reads like a real cluster.
NODE_ADDRESS_PREFIX = "10.240.0."

STATE_FILE = "state.json"
STOP_TIMEOUT = 10.0
_START_TIMEOUT = 60.0

# Stopped in reverse: clients of the API server first, etcd last, so nothing logs a storm of
# connection errors on the way down.
_START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

Manifest = dict[str, Any]

# The dynamic client is the one part of the otherwise typed ``kubernetes`` package without
# annotations; naming it as Any keeps --strict from flagging every call.
_DynamicClient: Any = k8s_dynamic.DynamicClient


@dataclass(frozen=True)
class ProcessRecord:
    """A component as ``state.json`` remembers it, enough to stop it from another process."""

    name: str
    pid: int
    start_ticks: int
    """Start time of ``pid`` (``/proc/<pid>/stat``, clock ticks since boot): a pid that was reused
    by an unrelated process after ours died has another start time, and is left alone."""
    log: str

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks


@dataclass(frozen=True)
class ClusterState:
    """What ``state.json`` in a work directory says."""

    workdir: Path
    kubeconfig: Path
    server: str
    detached: bool
    started_at: str
    processes: tuple[ProcessRecord, ...]
    stopped_at: str | None = None
    pod_cidr: str | None = None
    """The range kwok hands pod IPs out of (``10.244.N.0/20``); None in state files of older starts."""

    def running(self) -> list[ProcessRecord]:
        return [record for record in self.processes if record.alive()]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _utc_now() -> str:
    return _now().isoformat(timespec="seconds")


def read_state(workdir: Path) -> ClusterState | None:
    """The ``state.json`` of ``workdir``, or None when nothing was ever started there."""
    path = workdir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise E2ESetupError(f"cannot read {path}: {exc}") from exc
    try:
        return ClusterState(
            workdir=workdir,
            kubeconfig=Path(raw["kubeconfig"]),
            server=str(raw["server"]),
            detached=bool(raw["detached"]),
            started_at=str(raw["started_at"]),
            stopped_at=raw.get("stopped_at"),
            pod_cidr=raw.get("pod_cidr"),
            processes=tuple(ProcessRecord(**record) for record in raw["processes"]),
        )
    except (KeyError, TypeError) as exc:
        raise E2ESetupError(f"{path} is not a control-plane state file: {exc!r}") from exc


def _write_state(state: ClusterState) -> None:
    data = asdict(state)
    data["workdir"] = str(state.workdir)
    data["kubeconfig"] = str(state.kubeconfig)
    path = state.workdir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    # Atomic, so a concurrent `status` or `down` never reads half a file.
    tmp.replace(path)


def _stop_record(record: ProcessRecord, timeout: float) -> bool:
    """SIGTERM the process group of ``record``, SIGKILL it after ``timeout``. True if it was running."""
    if not record.alive():
        return False
    # Each component leads its own process group (spawn() calls setsid), so the group id is its
    # pid; anything it forked goes down with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while record.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while record.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


@dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> _Ports:
        # free_port() closes its probe socket, so two calls may hand out the same port.
        ports: list[int] = []
        while len(ports) < 6:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return cls(*ports)


class ControlPlane:
    """A running local control plane; use :meth:`start` to get one."""

    def __init__(
        self,
        *,
        workdir: Path,
        pki: ClusterPKI,
        kubeconfig: Path,
        server: str,
        detached: bool,
        audit: bool = False,
        audit_reads: bool = False,
        pod_cidr: PodCidrLease,
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.kubeconfig = kubeconfig
        self.server = server
        self.detached = detached
        self.audit_log: Path | None = workdir / AUDIT_LOG if audit else None
        """The API server's audit log of writes (:mod:`e2e.cluster.audit`); None when not audited."""
        self.audit_reads = audit and audit_reads
        """Whether the audit log records reads too (a bench counting requests by verb), not only writes."""
        self.processes: dict[str, ManagedProcess] = {}
        self.startup_seconds: float | None = None
        self.apiserver_unready: list[tuple[datetime.datetime, datetime.datetime | None]] = []
        """From each stop of kube-apiserver (:meth:`stop_apiserver`) until it was ready again
        (None: not yet). A restarted API server serves before its RBAC authorizer has read the
        Roles back, and refuses its clients meanwhile (see ``e2e.harness.controller.DENIED``)."""
        self._started_at = _utc_now()
        self._pod_cidr_lease = pod_cidr

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        """The range this plane's pod IPs come from: its own, no other running plane's."""
        return self._pod_cidr_lease.network

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        nodes: int = 3,
        detach: bool = False,
        binaries: Binaries | None = None,
        timeout: float = _START_TIMEOUT,
        audit: bool = True,
        audit_reads: bool = False,
    ) -> ControlPlane:
        """Start every component in ``workdir`` and return once ``nodes`` Nodes are Ready.

        ``audit`` makes the API server log every write to :attr:`audit_log`; ``audit_reads`` every
        read as well (a larger log: for benches that count requests, not for the scenarios).

        Anything still running from an earlier start in the same ``workdir`` is stopped first.
        Each wait is bounded by ``timeout`` seconds; on failure, whatever was started is stopped
        and the :class:`E2ESetupError` names the component and quotes its log.
        """
        workdir = workdir.resolve()
        binaries = binaries or find_binaries()
        workdir.mkdir(parents=True, exist_ok=True)
        cls.stop_detached(workdir)
        began = time.monotonic()
        _reset_workdir(workdir)

        pki = generate_pki(workdir / "pki")
        ports = _Ports.allocate()
        server = f"https://127.0.0.1:{ports.apiserver}"
        kubeconfig = write_kubeconfig(
            workdir / "kubeconfig", server=server, ca_cert=pki.ca.cert, client=pki.admin, user="admin"
        )
        plane = cls(
            workdir=workdir, pki=pki, kubeconfig=kubeconfig, server=server, detached=detach, audit=audit,
            audit_reads=audit_reads,
            pod_cidr=lease_pod_cidr(),
        )
        try:
            plane._launch(binaries, ports, timeout=timeout)
            plane._create_nodes(nodes, timeout=timeout)
        except BaseException:
            plane.stop()
            raise
        plane.startup_seconds = time.monotonic() - began
        return plane

    def _component_kubeconfig(self, name: str, client: KeyPair, user: str) -> Path:
        return write_kubeconfig(
            self.workdir / "kubeconfigs" / f"{name}.kubeconfig",
            server=self.server,
            ca_cert=self.pki.ca.cert,
            client=client,
            user=user,
        )

    def _spawn(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        process = spawn(
            name,
            argv,
            log_path=self.workdir / "logs" / f"{name}.log",
            cwd=self.workdir,
            die_with_parent=not self.detached,
        )
        self.processes[name] = process
        self._save_state()
        return process

    def _launch(self, binaries: Binaries, ports: _Ports, *, timeout: float) -> None:
        pki, workdir = self.pki, self.workdir

        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=e2e",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
                # A throwaway cluster: losing the last writes on a machine crash costs nothing,
                # and fsync on every write is most of etcd's latency on a shared disk.
                "--unsafe-no-fsync",
            ],
        )
        wait_until(
            lambda: _http_ok(f"{etcd_url}/health"),
            timeout=timeout,
            what=f"etcd to answer on {etcd_url}/health",
            process=etcd,
        )

        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.apiserver}",
                "--advertise-address=127.0.0.1",
                # The endpoints of default/kubernetes would be 127.0.0.1, which Endpoints
                # validation refuses (loopback), so the reconciler would fail every 10s. Nothing
                # in this cluster reaches the API server through that Service.
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--client-ca-file={pki.ca.cert}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                # Never written (the TLS files are given), but its default is /var/run/kubernetes.
                f"--cert-dir={pki.directory / 'generated'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account_public_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                # API aggregation: the API server forwards to aggregated servers as
                # front-proxy-client and those trust the X-Remote-* headers of that name only.
                f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT_NAME}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
                f"--proxy-client-key-file={pki.front_proxy_client.key}",
                # There is no kube-proxy, so ClusterIPs lead nowhere: dial an endpoint instead.
                "--enable-aggregator-routing=true",
                "--profiling=false",
                *(audit_flags(workdir, reads=self.audit_reads) if self.audit_log is not None else []),
            ],
        )
        self._wait_apiserver_ready(apiserver, timeout)

        controller_manager_kubeconfig = self._component_kubeconfig(
            "kube-controller-manager", pki.controller_manager, "system:kube-controller-manager"
        )
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={controller_manager_kubeconfig}",
                f"--authentication-kubeconfig={controller_manager_kubeconfig}",
                f"--authorization-kubeconfig={controller_manager_kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.controller_manager}",
                f"--tls-cert-file={pki.controller_manager_serving.cert}",
                f"--tls-private-key-file={pki.controller_manager_serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca.cert}",
                "--use-service-account-credentials=true",
                # Each controller fetches its own service-account token at start; at the default
                # 20 requests/s the ~40 controllers take 5 s to come up, one after the other.
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                # Lets CertificateSigningRequests be approved and signed as in a real cluster.
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                "--cluster-name=canary-e2e",
                # Cloud controllers switch themselves off without --cloud-provider; the node-IPAM
                # controller without --allocate-node-cidrs (kwok hands out pod IPs itself).
                "--controllers=*",
                "--profiling=false",
            ],
        )

        scheduler_kubeconfig = self._component_kubeconfig(
            "kube-scheduler", pki.scheduler, "system:kube-scheduler"
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={scheduler_kubeconfig}",
                f"--authentication-kubeconfig={scheduler_kubeconfig}",
                f"--authorization-kubeconfig={scheduler_kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.scheduler}",
                f"--tls-cert-file={pki.scheduler_serving.cert}",
                f"--tls-private-key-file={pki.scheduler_serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--profiling=false",
            ],
        )

        kwok_kubeconfig = self._component_kubeconfig("kwok", pki.kwok, "kwok")
        # An explicit configuration (otherwise kwok reads ~/.kwok/kwok.yaml, and a stage file
        # someone left there would change how Pods behave in our tests): kwok's own Pod stages,
        # but deletion honours the delay annotation (e2e.cluster.kwok_config).
        kwok_config = write_kwok_config(workdir / "kwok.yaml", binaries.kwok_stages)
        kwok = self._spawn(
            "kwok",
            [
                str(binaries.kwok),
                f"--config={kwok_config}",
                f"--kubeconfig={kwok_kubeconfig}",
                "--manage-all-nodes=true",
                f"--cidr={kwok_cidr(self.pod_cidr)}",
                # Heartbeat through Node Leases, as kubelets do. Without them kwok refreshes the
                # Node's Ready condition only about once a minute, past the node controller's 50 s
                # grace period: every Node flapped NotReady and the node controller marked every
                # Pod unready, which kwok never undid (seen here: releases stuck at "0 of 2
                # available").
                "--node-lease-duration-seconds=40",
                # Health and metrics only, on loopback; without it kwok would listen on
                # 0.0.0.0:<node-port>.
                f"--server-address=127.0.0.1:{ports.kwok}",
            ],
        )
        # kwok is what uses the range, and what outlives us when the plane is detached.
        self._pod_cidr_lease.hand_over(kwok.pid)
        # kwok's informers first try a watch-list stream, which the API server refuses because
        # etcd 3.4.23 is too old for its progress notifications; they fall back to list+watch
        # after a ~1 s backoff, which start-up pays once. KUBE_FEATURE_WatchListClient=false in
        # kwok's environment did not change that, and kwok v0.7.0 has no --feature-gates flag.

        # They start in parallel; by the time the first answers the others usually do too.
        for name, url, ca in (
            ("kube-controller-manager", f"https://127.0.0.1:{ports.controller_manager}/healthz", pki.ca.cert),
            ("kube-scheduler", f"https://127.0.0.1:{ports.scheduler}/healthz", pki.ca.cert),
            ("kwok", f"http://127.0.0.1:{ports.kwok}/healthz", None),
        ):
            wait_until(
                _healthz_probe(url, ca),
                timeout=timeout,
                what=f"{name} to be healthy ({url})",
                process=self.processes[name],
            )

    def _wait_apiserver_ready(self, apiserver: ManagedProcess, timeout: float) -> None:
        wait_until(
            lambda: self._apiserver_ready(),
            timeout=timeout,
            what=f"kube-apiserver to be ready ({self.server}/readyz)",
            process=apiserver,
        )

    # -- faults ------------------------------------------------------------------------------

    def stop_apiserver(self, *, grace: float = STOP_TIMEOUT) -> None:
        """Stop kube-apiserver alone: SIGTERM, then SIGKILL after ``grace`` seconds (0: SIGKILL at
        once, a crash). etcd, its data and every other component keep running; their clients see
        connections refused.

        A graceful stop stops listening at once but the process lingers until ``grace`` runs out
        (measured: about 10 s, with watches open), so the outage its clients see is ``grace`` plus
        the start-up, unlike a Pod's, whose replacement starts on another address meanwhile.
        """
        process = self.processes["kube-apiserver"]
        self.apiserver_unready.append((_now(), None))
        if grace > 0:
            process.stop(timeout=grace)
        else:
            process.kill()

    def start_apiserver(self, *, timeout: float = _START_TIMEOUT) -> None:
        """Start kube-apiserver again after :meth:`stop_apiserver`, with the same flags, so the same
        certificates, port, etcd and audit log; return once it is ready. Its log is appended to."""
        previous = self.processes["kube-apiserver"]
        if previous.alive():
            raise E2ESetupError(f"kube-apiserver (pid {previous.pid}) is still running; stop it first")
        apiserver = self._spawn("kube-apiserver", previous.argv)
        self._wait_apiserver_ready(apiserver, timeout)
        if self.apiserver_unready and self.apiserver_unready[-1][1] is None:
            self.apiserver_unready[-1] = (self.apiserver_unready[-1][0], _now())

    def restart_apiserver(self, *, grace: float = STOP_TIMEOUT, timeout: float = _START_TIMEOUT) -> None:
        """Stop kube-apiserver and start it again at once, as a crash (``grace=0``) or an upgrade would."""
        self.stop_apiserver(grace=grace)
        self.start_apiserver(timeout=timeout)

    def _apiserver_ready(self) -> bool:
        return _http_ok(
            f"{self.server}/readyz", ca=self.pki.ca.cert, client=self.pki.admin
        )

    def ensure_nodes(self, count: int, *, timeout: float = _START_TIMEOUT) -> None:
        """At least ``count`` kwok Nodes (110 pods each), Ready: a scenario with thousands of
        pods adds what it needs to the Nodes the plane started with."""
        with self.api_client() as api:
            existing = len(k8s.CoreV1Api(api).list_node().items)
        if existing < count:
            self._create_nodes(count, timeout=timeout, first=existing)

    def _create_nodes(self, count: int, *, timeout: float, first: int = 0) -> None:
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            for index in range(first, count):
                try:
                    node = _kwok_node(f"{NODE_NAME_PREFIX}{index}", f"{NODE_ADDRESS_PREFIX}{index + 1}")
                    core.create_node(k8s.V1Node.model_validate(node))
                except ApiException as exc:
                    raise E2ESetupError(
                        f"creating Node {NODE_NAME_PREFIX}{index} failed: {_api_error(exc)}"
                    ) from exc

            def nodes_usable() -> bool:
                usable = [node for node in core.list_node().items if _node_usable(node)]
                return len(usable) >= count

            wait_until(
                nodes_usable,
                timeout=timeout,
                what=f"{count} kwok Nodes to be Ready and untainted",
                process=self.processes["kwok"],
            )

            # The service-account controller is what makes Pods admissible (the ServiceAccount
            # admission plugin refuses Pods whose account does not exist yet).
            def default_account_exists() -> bool:
                core.read_namespaced_service_account("default", "default")
                return True

            wait_until(
                default_account_exists,
                timeout=timeout,
                what="kube-controller-manager to create ServiceAccount default/default",
                process=self.processes["kube-controller-manager"],
            )
        self._check_all_alive()

    def _check_all_alive(self) -> None:
        for process in self.processes.values():
            if not process.alive():
                raise E2ESetupError(
                    f"{process.name} exited with code {process.popen.returncode}; last lines of "
                    f"{process.log_path}:\n{process.log_tail()}"
                )

    def _save_state(self, *, stopped: bool = False) -> None:
        records = []
        for process in ([] if stopped else self.processes.values()):
            ticks = start_ticks(process.pid)
            if ticks is not None:
                records.append(
                    ProcessRecord(
                        name=process.name,
                        pid=process.pid,
                        start_ticks=ticks,
                        log=str(process.log_path),
                    )
                )
        _write_state(
            ClusterState(
                workdir=self.workdir,
                kubeconfig=self.kubeconfig,
                server=self.server,
                detached=self.detached,
                started_at=self._started_at,
                stopped_at=_utc_now() if stopped else None,
                processes=tuple(records),
                pod_cidr=str(self.pod_cidr),
            )
        )

    def stop(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL after a grace period). Idempotent.

        Logs, certificates and etcd's data stay in the work directory.
        """
        by_name = self.processes
        running = [by_name[name] for name in reversed(_START_ORDER) if name in by_name]
        # The API server's clients do not depend on each other: let them shut down together.
        clients = [p for p in running if p.name not in ("kube-apiserver", "etcd")]
        for process in clients:
            if process.alive():
                process.signal(signal.SIGTERM)
        for process in running:
            process.stop(timeout=STOP_TIMEOUT)
        self._pod_cidr_lease.release()
        if by_name:
            with contextlib.suppress(OSError):
                self._save_state(stopped=True)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def stop_detached(workdir: Path, *, timeout: float = STOP_TIMEOUT) -> list[ProcessRecord]:
        """Stop the processes ``workdir/state.json`` lists; returns those that were running.

        Only processes are touched: logs, certificates, etcd data and the kubeconfig stay.
        """
        workdir = workdir.resolve()
        state = read_state(workdir)
        if state is None:
            return []
        by_name = {record.name: record for record in state.processes}
        ordered = [by_name[name] for name in reversed(_START_ORDER) if name in by_name]
        ordered += [record for record in state.processes if record.name not in _START_ORDER]
        stopped = [record for record in ordered if _stop_record(record, timeout)]
        # The plane's pod range was held by its kwok, which is gone now.
        reclaim_stale()
        _write_state(
            ClusterState(
                workdir=state.workdir,
                kubeconfig=state.kubeconfig,
                server=state.server,
                detached=state.detached,
                started_at=state.started_at,
                stopped_at=state.stopped_at or _utc_now(),
                processes=(),
                pod_cidr=state.pod_cidr,
            )
        )
        return stopped

    @staticmethod
    def status(workdir: Path) -> ClusterState | None:
        """What ``state.json`` says about ``workdir`` (check :meth:`ClusterState.running`)."""
        return read_state(workdir.resolve())

    # -- clients -----------------------------------------------------------------------------

    def api_client(self) -> k8s.ApiClient:
        """A new admin client of this cluster; close it (or use it as a context manager)."""
        # Built from the same files the kubeconfig embeds, which spares the client the temporary
        # copies it would write for kubeconfig-embedded certificates.
        configuration = k8s.Configuration(
            host=self.server,
            ssl_ca_cert=str(self.pki.ca.cert),
            cert_file=str(self.pki.admin.cert),
            key_file=str(self.pki.admin.key),
        )
        return k8s.ApiClient(configuration)

    # -- manifests ---------------------------------------------------------------------------

    def install_manifests(
        self, paths: Sequence[Path], *, timeout: float = _START_TIMEOUT
    ) -> list[str]:
        """:func:`install_manifests` into this cluster."""
        with self.api_client() as api:
            return install_manifests(api, paths, timeout=timeout)


# -- helpers -----------------------------------------------------------------------------------


def _reset_workdir(workdir: Path) -> None:
    """Remove what a previous start left that a new cluster must not inherit; keep its logs."""
    shutil.rmtree(workdir / "etcd", ignore_errors=True)
    logs = workdir / "logs"
    if logs.is_dir():
        previous = workdir / "logs.previous"
        shutil.rmtree(previous, ignore_errors=True)
        logs.rename(previous)
    logs.mkdir(parents=True, exist_ok=True)


def _ssl_context(ca: Path, client: KeyPair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _http_ok(url: str, *, ca: Path | None = None, client: KeyPair | None = None) -> bool:
    context = _ssl_context(ca, client) if ca is not None else None
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        status: int = response.status
        return status == 200


def _healthz_probe(url: str, ca: Path | None) -> Callable[[], bool]:
    return lambda: _http_ok(url, ca=ca)


def _kwok_node(name: str, address: str) -> Manifest:
    """A Node as kwok documents them, without its taint: every Pod may land on it."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "kwok.x-k8s.io/node": "fake",
            },
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "kubeProxyVersion": "fake",
                "kubeletVersion": "fake",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def _node_usable(node: Any) -> bool:
    conditions = node.status.conditions if node.status else None
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions or [])
    # The node-lifecycle controller taints a Node not-ready until it reports Ready; the
    # scheduler would skip it until the taint is gone.
    return ready and not node.spec.taints


def _api_error(exc: ApiException) -> str:
    message = exc.body or exc.reason
    try:
        message = json.loads(exc.body or "").get("message") or message
    except (AttributeError, ValueError):
        pass
    return f"HTTP {exc.status}: {message}"


def _iter_manifest_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
            )
        elif path.is_file():
            yield path
        else:
            raise E2ESetupError(f"no manifest file or directory at {path}")


def load_manifests(paths: Sequence[Path]) -> list[Manifest]:
    """Every object in ``paths`` (files or directories, ``kind: List`` expanded), in file order."""
    manifests: list[Manifest] = []
    for file in _iter_manifest_files(paths):
        try:
            documents = list(yaml.safe_load_all(file.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise E2ESetupError(f"cannot read manifests from {file}: {exc}") from exc
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict) or "kind" not in document:
                raise E2ESetupError(f"{file} holds a document that is not a Kubernetes object")
            if document["kind"].endswith("List") and isinstance(document.get("items"), list):
                manifests.extend(document["items"])
            else:
                manifests.append(document)
    return manifests


def install_manifests(
    api: k8s.ApiClient, paths: Sequence[Path], *, timeout: float = _START_TIMEOUT
) -> list[str]:
    """Server-side apply every object in the YAML/JSON files (or directories of them) ``paths``.

    Works against any cluster ``api`` reaches. CustomResourceDefinitions and Namespaces go
    first; the rest waits until every CRD is Established and its resource is served in
    discovery, so custom objects in the same set apply too. Returns ``kind/name`` (or
    ``kind/namespace/name``) of each applied object, in the order applied.
    """
    manifests = load_manifests(paths)
    early = ("CustomResourceDefinition", "Namespace")
    first = [m for m in manifests if m.get("kind") in early]
    rest = [m for m in manifests if m.get("kind") not in early]
    applied: list[str] = []
    with tempfile.TemporaryDirectory(prefix="canary-e2e-") as tmp:
        # The dynamic client caches discovery in a file named after the server URL; a port
        # reused by a later cluster would then see stale resources, so the cache is private.
        dynamic = _DynamicClient(api, cache_file=str(Path(tmp) / "discovery.json"))
        for manifest in first:
            applied.append(_apply(dynamic, manifest))
        crds = [m for m in first if m.get("kind") == "CustomResourceDefinition"]
        if crds:
            wait_for_crds(api, crds, timeout=timeout)
            if rest:
                dynamic.resources.invalidate_cache()
        for manifest in rest:
            applied.append(_apply(dynamic, manifest))
    return applied


def wait_for_crds(api: k8s.ApiClient, crds: Sequence[Manifest], *, timeout: float) -> None:
    """Wait until each CRD in ``crds`` is Established and every served version is discoverable."""
    extensions = k8s.ApiextensionsV1Api(api)
    custom = k8s.CustomObjectsApi(api)
    for crd in crds:
        name = crd["metadata"]["name"]
        spec = crd["spec"]
        group, plural = spec["group"], spec["names"]["plural"]

        def established(name: str = name) -> bool:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_until(established, timeout=timeout, what=f"CustomResourceDefinition {name} to be Established")
        for version in spec["versions"]:
            if not version.get("served", True):
                continue

            # Established comes first; the aggregated discovery document catches up a moment
            # later, and clients that resolve kinds through discovery fail until it does.
            def discoverable(version: str = version["name"]) -> bool:
                listing = custom.get_api_resources(group, version)
                return any(resource.name == plural for resource in listing.resources)

            wait_until(
                discoverable,
                timeout=timeout,
                what=f"{plural}.{group}/{version['name']} to appear in API discovery",
            )


def _describe(manifest: Manifest) -> str:
    metadata = manifest.get("metadata") or {}
    parts = [str(manifest.get("kind")), metadata.get("namespace"), metadata.get("name")]
    return "/".join(str(part) for part in parts if part)


def _apply(dynamic: Any, manifest: Manifest) -> str:
    description = _describe(manifest)
    try:
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        namespace = None
        if resource.namespaced:
            namespace = (manifest.get("metadata") or {}).get("namespace") or "default"
        dynamic.server_side_apply(
            resource,
            body=manifest,
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
    except ApiException as exc:
        raise E2ESetupError(f"applying {description} failed: {_api_error(exc)}") from exc
    except ResourceNotFoundError as exc:
        raise E2ESetupError(
            f"applying {description} failed: the server has no resource for "
            f"{manifest.get('apiVersion')} {manifest.get('kind')}"
        ) from exc
    return description

