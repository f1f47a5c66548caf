"""Each control plane's own pod range: leased under a lock, freed when its holder is gone."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster import pod_cidr
from e2e.cluster.pod_cidr import POOL, PREFIX_LEN, choose, kwok_cidr, lease_pod_cidr, taken_ranges
from e2e.processes import E2ESetupError

RANGES = list(POOL.subnets(new_prefix=PREFIX_LEN))


@pytest.fixture(autouse=True)
def lease_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(pod_cidr, "LEASE_DIR", tmp_path)
    return tmp_path


def test_ranges_are_sixteen_slash_20s_of_10_244() -> None:
    assert len(RANGES) == 16
    assert RANGES[0] == ipaddress.IPv4Network("10.244.0.0/20")


def test_choose_skips_taken_ranges_and_wraps_around() -> None:
    assert choose(set(), seed=3) == RANGES[3]
    assert choose({RANGES[3], RANGES[4]}, seed=3) == RANGES[5]
    assert choose(set(RANGES[1:]), seed=5) == RANGES[0]


def test_choose_refuses_when_every_range_is_taken() -> None:
    with pytest.raises(E2ESetupError, match="all 16 pod CIDRs"):
        choose(set(RANGES), seed=0)


def test_kwok_is_given_the_first_address_and_the_length() -> None:
    assert kwok_cidr(ipaddress.IPv4Network("10.244.32.0/20")) == "10.244.32.1/20"


def test_leases_of_live_holders_are_distinct_and_release_frees_them() -> None:
    first, second = lease_pod_cidr(), lease_pod_cidr()
    assert first.network != second.network
    assert taken_ranges() == {first.network, second.network}
    first.release()
    first.release()  # idempotent
    assert taken_ranges() == {second.network}


def test_a_lease_whose_holder_exited_is_free_again() -> None:
    lease = lease_pod_cidr()
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        lease.hand_over(holder.pid)
        assert lease.network in taken_ranges()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert lease.network not in taken_ranges()
    assert not lease.path.exists()


def test_a_lease_of_a_reused_pid_is_free_again(lease_dir: Path) -> None:
    lease = lease_pod_cidr()
    # The same pid with another start time: the process that took the lease is gone.
    lease.path.write_text(lease.path.read_text().replace('"ticks": ', '"ticks": 1'))
    assert taken_ranges() == set()


def test_an_unreadable_lease_is_free_again(lease_dir: Path) -> None:
    (lease_dir / pod_cidr.lease_name(RANGES[2])).write_text("not json")
    assert taken_ranges() == set()


def test_reclaim_stale_deletes_only_leases_of_gone_holders(lease_dir: Path) -> None:
    live = lease_pod_cidr()
    # The live lease's range depends on this process's pid: the stale one must be another.
    stale = next(r for r in RANGES if r != live.network)
    (lease_dir / pod_cidr.lease_name(stale)).write_text('{"pid": 1, "ticks": -1}')  # no process started before boot
    pod_cidr.reclaim_stale()
    assert sorted(p.name for p in lease_dir.glob("*.json")) == [live.path.name]
