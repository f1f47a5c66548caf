"""What the data plane did with the requests: the share each backend got under each weight."""

from __future__ import annotations

import math
from collections.abc import Mapping

from e2e.mesh.client import ApexStats


def requests_by_canary_weight(stats: ApexStats, canary: str) -> dict[int, dict[str, int]]:
    """Requests per backend, summed over every routing configuration with the same canary percent.

    The same weight can be in effect several times (a route rewritten with equal weights, a
    restart), so configurations are grouped by the canary's percentage, rounded to a whole one.
    """
    out: dict[int, dict[str, int]] = {}
    for config in stats.configs:
        weight = round(config.percent.get(canary, 0.0))
        bucket = out.setdefault(weight, {})
        for backend, count in config.requests.items():
            bucket[backend] = bucket.get(backend, 0) + count
    return out


def assert_share_matches(requests: Mapping[str, int], canary_share: float, *, backend: str = "podinfo-canary") -> None:
    """The data plane's split matched the weight, within 4 standard deviations of a binomial draw."""
    total = sum(requests.values())
    assert total >= 30, f"too few requests at canary weight {canary_share:.0%} to judge: {dict(requests)}"
    seen = requests.get(backend, 0) / total
    tolerance = 4 * math.sqrt(canary_share * (1 - canary_share) / total) + 0.01
    assert abs(seen - canary_share) <= tolerance, (
        f"at weight {canary_share:.0%} the data plane sent {seen:.1%} of {total} requests to the canary"
    )
