from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from canary.kube.shard_plan import ShardPlan, bucket_lease_name, bucket_of, fair_share, member_lease_name, plan

#: What the API server accepts as an object name (a DNS subdomain), at most 253 characters.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_a_canary_lands_in_the_same_bucket_in_every_process() -> None:
    # Python salts str hashes per process; every replica must still agree on each Canary's bucket.
    names = [("shop", "checkout"), ("shop", "cart"), ("web", "checkout"), ("a", "b")]
    here = [bucket_of(ns, name, 16) for ns, name in names]
    script = (f"from canary.kube.shard_plan import bucket_of; "
              f"print([bucket_of(ns, name, 16) for ns, name in {names!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == str(here)
    assert all(0 <= bucket_of("ns", f"app-{i}", 12) < 12 for i in range(500))


def test_buckets_spread_canaries_roughly_evenly() -> None:
    counts = Counter(bucket_of("bench", f"app-{i:04d}", 12) for i in range(3000))
    assert set(counts) == set(range(12))
    # 250 expected per bucket; a hash that clumps would leave one replica most of the work.
    assert max(counts.values()) < 1.25 * 250 and min(counts.values()) > 0.75 * 250, counts


def test_lease_names_are_valid_object_names() -> None:
    assert bucket_lease_name("canary-controller", 7) == "canary-controller-bucket-7"
    member = member_lease_name("canary-controller", "canary-7d9f8c6b5-x2x9z_1")
    assert DNS_SUBDOMAIN.match(member) and len(member) <= 253, member
    assert member != member_lease_name("canary-controller", "canary-7d9f8c6b5-x2x9z_2"), "one per process"


@pytest.mark.parametrize(("buckets", "members", "share"), [(12, 1, 12), (12, 2, 6), (12, 3, 4), (16, 3, 6),
                                                            (2, 3, 1), (12, 0, 12)])
def test_fair_share_rounds_up_so_shares_cover_every_bucket(buckets: int, members: int, share: int) -> None:
    assert fair_share(buckets, members) == share
    assert fair_share(buckets, members) * max(members, 1) >= buckets


def test_takes_free_buckets_up_to_its_share() -> None:
    decided = plan(identity="a", buckets=12, members=3, held=[0], free=[3, 4, 5, 6, 7, 8])
    assert len(decided.take) == 3 and set(decided.take) <= {3, 4, 5, 6, 7, 8} and not decided.shed


def test_takes_what_is_free_when_less_than_its_share_is() -> None:
    assert plan(identity="a", buckets=12, members=2, held=[0, 1], free=[9]) == ShardPlan(take=(9,))


def test_at_its_share_does_nothing_even_with_buckets_free() -> None:
    assert plan(identity="a", buckets=12, members=3, held=[0, 1, 2, 3], free=[4, 5]) == ShardPlan()


def test_above_its_share_gives_up_the_excess_highest_first() -> None:
    # A third replica joined: 6 each became 4 each.
    assert plan(identity="a", buckets=12, members=3, held=[0, 2, 4, 6, 8, 10], free=[]) == ShardPlan(shed=(10, 8))


def test_replicas_short_of_buckets_try_different_ones_first() -> None:
    free = list(range(12))
    firsts = {plan(identity=f"replica-{i}", buckets=12, members=3, held=[], free=free).take[0] for i in range(6)}
    assert len(firsts) > 1, "every replica would race for the same bucket"
