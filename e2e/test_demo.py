"""`make demo` stays true: its two releases through the real Traefik end as the README says."""

from __future__ import annotations

import pytest

from e2e.demo import TraefikTraffic, run_demo
from e2e.harness.environment import POD_NETWORK_NEEDS_LOCAL_CLUSTER, Environment


def test_the_demo_promotes_the_healthy_release_and_rolls_back_the_faulty_one(env: Environment) -> None:
    if env.control_plane is None:
        pytest.skip(POD_NETWORK_NEEDS_LOCAL_CLUSTER)
    summaries = run_demo(env, TraefikTraffic(env))
    assert [s.outcome for s in summaries] == ["Succeeded", "Failed"], summaries
    healthy, faulty = summaries
    assert healthy.weights[:4] == [0, 20, 40, 60], healthy
    assert "failed checks reached the threshold" in faulty.message, faulty
