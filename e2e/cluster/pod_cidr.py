"""Each control plane's own pod address range, so parallel runs on one machine never share pod IPs.

kwok hands out pod IPs from the range given by ``--cidr``. Once pods are real HTTP servers at
those addresses (:mod:`e2e.podnet`), the range is routed into a network namespace of the run: two
runs with the same range would route the same addresses into two namespaces, and one run's
Traefik would reach the other run's pods. So every control plane takes one /20 of
:data:`POOL` (16 of them) for itself.

A taken range is a lease file under :data:`LEASE_DIR` naming its holder (pid and start time, as
pids are reused). The holder is first the starting process, then kwok, which is what uses the
range and what a detached cluster (``make cluster-up``) keeps running after its starter exits.
A lease whose holder is gone is free again, so a SIGKILLed run leaks nothing for long. Leases are
taken under a file lock, so two runs starting at once never pick the same range.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from e2e.processes import E2ESetupError, start_ticks

#: Every run's range is a part of it; it overlaps neither the service range (10.0.0.0/16), the
#: Node addresses (10.240.0.0/24) nor the test hosts' pool (10.250.0.0/16).
POOL = ipaddress.IPv4Network("10.244.0.0/16")
#: 4095 pod addresses per run (kwok reuses a deleted Pod's address at once), 16 runs at once.
PREFIX_LEN = 20


def _lease_dir() -> Path:
    # /run/lock is shared by every user of the machine; a non-root run may not write there.
    run_lock = Path("/run/lock")
    base = run_lock if os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())
    return base / "canary-e2e-pod-cidrs"


LEASE_DIR = _lease_dir()


@dataclass(frozen=True)
class Holder:
    pid: int
    ticks: int

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.ticks

    @classmethod
    def of(cls, pid: int) -> Holder:
        ticks = start_ticks(pid)
        if ticks is None:
            raise E2ESetupError(f"process {pid} cannot hold a pod CIDR lease: it is not running")
        return cls(pid, ticks)


def lease_name(network: ipaddress.IPv4Network) -> str:
    return f"{network.network_address}-{network.prefixlen}.json"


def choose(taken: set[ipaddress.IPv4Network], *, seed: int) -> ipaddress.IPv4Network:
    """The first range of :data:`POOL` not in ``taken``, looking from a ``seed``-derived slot
    (runs started at once rarely even compare the same ranges)."""
    candidates = list(POOL.subnets(new_prefix=PREFIX_LEN))
    start = seed % len(candidates)
    for offset in range(len(candidates)):
        network = candidates[(start + offset) % len(candidates)]
        if network not in taken:
            return network
    raise E2ESetupError(
        f"all {len(candidates)} pod CIDRs of {POOL} are leased by running clusters (see {LEASE_DIR}); "
        "stop one (make cluster-down) or wait for a run to end"
    )


def kwok_cidr(network: ipaddress.IPv4Network) -> str:
    """kwok's ``--cidr`` form: the address kwok hands out first (it gives the network address itself
    to no Pod) and the range's length."""
    return f"{network.network_address + 1}/{network.prefixlen}"


@dataclass
class PodCidrLease:
    network: ipaddress.IPv4Network
    path: Path

    def hand_over(self, pid: int) -> None:
        """Make ``pid`` the holder: the lease lives as long as that process does."""
        _write_holder(self.path, Holder.of(pid))

    def release(self) -> None:
        """Give the range back. Idempotent."""
        with _locked(), contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _write_holder(path: Path, holder: Holder) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": holder.pid, "ticks": holder.ticks}) + "\n")
    tmp.replace(path)


def _read_holder(path: Path) -> Holder | None:
    try:
        raw = json.loads(path.read_text())
        return Holder(int(raw["pid"]), int(raw["ticks"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    LEASE_DIR.mkdir(parents=True, exist_ok=True)
    with (LEASE_DIR / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def taken_ranges(alive: Callable[[Holder], bool] = Holder.alive) -> set[ipaddress.IPv4Network]:
    """Ranges whose lease has a live holder; leases of dead holders are deleted on the way."""
    taken: set[ipaddress.IPv4Network] = set()
    for network in POOL.subnets(new_prefix=PREFIX_LEN):
        path = LEASE_DIR / lease_name(network)
        if not path.exists():
            continue
        holder = _read_holder(path)
        if holder is not None and alive(holder):
            taken.add(network)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return taken


def reclaim_stale() -> None:
    """Delete the leases whose holder is gone (a detached plane brought down, a killed run)."""
    with _locked():
        taken_ranges()


def lease_pod_cidr() -> PodCidrLease:
    """Take a free range for this process (hand it over to kwok once kwok runs)."""
    pid = os.getpid()
    with _locked():
        network = choose(taken_ranges(), seed=pid)
        path = LEASE_DIR / lease_name(network)
        _write_holder(path, Holder.of(pid))
    return PodCidrLease(network=network, path=path)


__all__ = ["POOL", "PREFIX_LEN", "PodCidrLease", "choose", "kwok_cidr", "lease_pod_cidr", "reclaim_stale", "taken_ranges"]
