"""Test hosts with a non-loopback address: a network namespace and a veth pair made by the run.

Why this exists: an aggregated API server (``canary metrics-server``) is reached by the API server
through a Service's endpoints, and endpoint addresses may not be loopback (the API server refuses
127.0.0.0/8 in an EndpointSlice). There is no kube-proxy either, so with
``--enable-aggregator-routing=true`` the API server dials the endpoint address itself, from this
host's root network namespace. The server must therefore listen on an address that is neither
loopback nor anyone else's: one we create.

How: ``ip netns add`` a namespace, ``ip link add`` a veth pair with one end inside it, and give
the root-side end an address from ``10.250.0.0/16`` (a /30 per test host; the peer gets the
other usable address). The root-side address is an ordinary local address of the root namespace:
a server bound to it is reachable from every process here (the API server included) and still
reaches everything else on 127.0.0.1 (the API server, Prometheus). The namespace only holds the
peer, which gives the link a carrier (a veth whose peer is missing or down reports NO-CARRIER) and
cleanup one handle: deleting the namespace deletes the veth pair with it.

Why the server runs in the root namespace and not inside the new one: from inside, it could
reach the API server and Prometheus only through the root-side address, so both would have to
listen there too. The API server binds 127.0.0.1 and its certificate names no other address of
this host, Prometheus listens on 127.0.0.1, and every kubeconfig of the run points at 127.0.0.1;
moving them would change the whole control plane for one test. Bound to the root-side address,
the server is reachable by the API server and nothing else changes.

Names carry the creating process's pid (``canary-e2e-<pid>-<ticks>-<seq>`` for the namespace,
``cnr<pid>n<seq>h|p`` for the links, which must fit in 15 characters), so parallel runs never
collide, and :func:`remove_stale` can delete what a crashed run left: anything with our prefix
whose creating process is gone (a pid whose start time differs counts as gone, since pids are
reused). Subnets are handed out under a file lock, so two runs starting at once do not pick the
same /30.

Everything here needs root (CAP_NET_ADMIN), as ``ip netns add`` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.processes import E2ESetupError, start_ticks, wait_until

NETNS_PREFIX = "canary-e2e-"
LINK_PREFIX = "cnr"
#: The pool the test hosts' /30 subnets come from; no other address on this machine uses it, and it
#: overlaps neither the cluster's service range (10.0.0.0/16), its pod range (10.244.0.0/16) nor
#: its Node addresses (10.240.0.0/24).
POOL = ipaddress.IPv4Network("10.250.0.0/16")
PREFIX_LEN = 30
LOCK_FILE = Path("/run/lock/canary-e2e-netns.lock")
_IP_TIMEOUT = 20.0

_NETNS_RE = re.compile(rf"^{re.escape(NETNS_PREFIX)}(\d+)-(\d+)-(\d+)$")
_LINK_RE = re.compile(rf"^{re.escape(LINK_PREFIX)}(\d+)n(\d+)[hp]$")
_sequence = 0


@dataclass(frozen=True)
class NetHost:
    """A network namespace joined to the root namespace by a veth pair.

    Servers that the API server must reach bind :attr:`host_address` (in the root namespace);
    :attr:`peer_address` is the far end, inside :attr:`netns`.
    """

    netns: str
    host_link: str
    peer_link: str
    host_address: str
    peer_address: str
    prefix_len: int
    owner_pid: int

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.host_address}/{self.prefix_len}", strict=False)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise E2ESetupError(
            f"creating a test host needs root (CAP_NET_ADMIN for `ip netns add` and `ip link add`); "
            f"this process runs as uid {os.geteuid()}"
        )
    if shutil.which("ip") is None:
        raise E2ESetupError("the `ip` command (iproute2) is not installed; apt-get install iproute2")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; with ``check``, a failure raises naming the command and quoting stderr."""
    argv = ["ip", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise E2ESetupError(f"`{' '.join(argv)}` could not run: {exc}") from exc
    if check and done.returncode != 0:
        hint = ""
        if "Operation not permitted" in done.stderr:
            hint = f" (this needs root / CAP_NET_ADMIN; uid is {os.geteuid()})"
        raise E2ESetupError(
            f"`{' '.join(argv)}` failed with exit code {done.returncode}: {done.stderr.strip() or '(no stderr)'}{hint}"
        )
    return done


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = _ip("-j", *args).stdout.strip()
    if not out:
        return []  # `ip -j netns list` prints nothing at all when there is no namespace
    try:
        parsed = json.loads(out)
    except ValueError as exc:
        raise E2ESetupError(f"`ip -j {' '.join(args)}` printed something that is not JSON: {out[:200]!r}") from exc
    if not isinstance(parsed, list):
        raise E2ESetupError(f"`ip -j {' '.join(args)}` printed {type(parsed).__name__}, expected a list")
    return [item for item in parsed if isinstance(item, dict)]


@contextlib.contextmanager
def _pool_lock() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def namespaces() -> list[str]:
    """Every network namespace ``ip netns`` knows (ours and anyone else's)."""
    return [str(item["name"]) for item in _ip_json("netns", "list") if "name" in item]


def _links() -> list[str]:
    return [str(item["ifname"]) for item in _ip_json("link", "show") if "ifname" in item]


def _used_networks() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = []
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info") or []:
            with contextlib.suppress(KeyError, ValueError):
                used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return used


def _free_subnet(pid: int) -> ipaddress.IPv4Network:
    candidates = list(POOL.subnets(new_prefix=PREFIX_LEN))
    used = _used_networks()
    # Start at a pid-derived slot, so parallel runs rarely even look at the same subnets.
    start = (pid * 7) % len(candidates)
    for offset in range(len(candidates)):
        subnet = candidates[(start + offset) % len(candidates)]
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise E2ESetupError(f"no free /{PREFIX_LEN} left in {POOL} for a test host; run e2e.netns.remove_stale()")


def _owner_gone(pid: int, ticks: int | None) -> bool:
    current = start_ticks(pid)
    if current is None:
        return True
    return ticks is not None and current != ticks


def remove_stale() -> list[str]:
    """Delete namespaces and links with our prefix whose creating process is gone; returns their names.

    A run that was SIGKILLed cannot clean up after itself (its server dies with it, but a network
    namespace outlives every process); the next run calls this first.
    """
    _require_root()
    removed: list[str] = []
    for name in namespaces():
        match = _NETNS_RE.match(name)
        if match and _owner_gone(int(match.group(1)), int(match.group(2))):
            _ip("netns", "delete", name)
            removed.append(f"netns {name}")
    # Deleting a namespace deletes the veth pair; a root-side end can only be left over if a run
    # died between creating the pair and moving its peer, which `ip link add ... netns` does at once.
    for link in _links():
        match = _LINK_RE.match(link)
        if match and link.endswith("h") and _owner_gone(int(match.group(1)), None):
            _ip("link", "delete", link, check=False)
            removed.append(f"link {link}")
    return removed


def create_net_host() -> NetHost:
    """A new namespace + veth pair with addresses from :data:`POOL`; see the module doc.

    On failure whatever was created is deleted again, and the :class:`E2ESetupError` names the
    ``ip`` command that failed and quotes its stderr.
    """
    global _sequence
    _require_root()
    pid = os.getpid()
    ticks = start_ticks(pid) or 0
    _sequence += 1
    seq = _sequence
    netns = f"{NETNS_PREFIX}{pid}-{ticks}-{seq}"
    host_link, peer_link = f"{LINK_PREFIX}{pid}n{seq}h", f"{LINK_PREFIX}{pid}n{seq}p"
    with _pool_lock():
        subnet = _free_subnet(pid)
        host_ip, peer_ip = (str(ip) for ip in list(subnet.hosts())[:2])
        host = NetHost(
            netns=netns,
            host_link=host_link,
            peer_link=peer_link,
            host_address=host_ip,
            peer_address=peer_ip,
            prefix_len=PREFIX_LEN,
            owner_pid=pid,
        )
        try:
            _ip("netns", "add", netns)
            _ip("link", "add", host_link, "type", "veth", "peer", "name", peer_link, "netns", netns)
            _ip("addr", "add", f"{host_ip}/{PREFIX_LEN}", "dev", host_link)
            _ip("link", "set", host_link, "up")
            _ip("-n", netns, "addr", "add", f"{peer_ip}/{PREFIX_LEN}", "dev", peer_link)
            _ip("-n", netns, "link", "set", peer_link, "up")
            _ip("-n", netns, "link", "set", "lo", "up")
        except BaseException:
            delete_net_host(host)
            raise
    return host


def delete_net_host(host: NetHost) -> None:
    """Delete the namespace and the veth pair. Idempotent; failures raise naming the command."""
    if host.netns in namespaces():
        _ip("netns", "delete", host.netns)
    # Gone with the namespace, unless the peer never made it into it; the kernel removes the pair
    # a moment after the namespace, so the link may vanish between listing and deleting it.
    if host.host_link in _links():
        _ip("link", "delete", host.host_link, check=False)
    wait_until(lambda: host.host_link not in _links(), timeout=30,
               what=f"the kernel to remove the test host's link {host.host_link}", interval=0.05)


@contextlib.contextmanager
def net_host() -> Iterator[NetHost]:
    """:func:`create_net_host` for the duration of a ``with`` block (stale leftovers removed first)."""
    remove_stale()
    host = create_net_host()
    try:
        yield host
    finally:
        delete_net_host(host)


def route_range_into(host: NetHost, network: ipaddress.IPv4Network) -> None:
    """Make every address of ``network`` one the host's namespace answers for, and route the range
    there from the root namespace, so processes here (Traefik, the API server) reach servers that
    listen on those addresses inside the namespace.

    Inside, one ``local`` route makes the whole range local (Linux's "AnyIP"): a socket may bind any
    address of it with no address configured first, and an address nothing listens on refuses
    connections at once instead of timing out. Outside, one route sends the range to the peer, with
    the root-side address as source so answers come back over the /30. Both go away with the
    namespace (the root-side route with its link), so :func:`delete_net_host` and
    :func:`remove_stale` clean them up too. Nothing of the range can leave the machine: the root
    namespace's route for it ends in a namespace this run made.
    """
    _ip("-n", host.netns, "route", "add", "local", str(network), "dev", "lo")
    _ip("route", "add", str(network), "via", host.peer_address, "dev", host.host_link, "src", host.host_address)


def describe(host: NetHost) -> Sequence[str]:
    """``ip`` views of the host's two ends, for error messages."""
    lines = [_ip("-br", "addr", "show", "dev", host.host_link, check=False).stdout.strip()]
    lines.append(_ip("-n", host.netns, "-br", "addr", "show", check=False).stdout.strip())
    return [line for line in lines if line]


__all__ = [
    "LINK_PREFIX",
    "NETNS_PREFIX",
    "POOL",
    "NetHost",
    "create_net_host",
    "delete_net_host",
    "describe",
    "namespaces",
    "remove_stale",
    "route_range_into",
    "net_host",
]
