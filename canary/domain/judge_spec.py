"""``spec.analysis.judge``: the statistical comparison of the canary with the primary (opt-in).

Absent, the analysis is the threshold rule alone (Flagger's). Present, the judge runs beside the
metric checks: every ``lookEvery`` while the canary has traffic, it compares the canary's errors
and latency with the primary's over the same window and rolls the release back as soon as the
evidence against the canary is conclusive. docs/analysis.md explains the test and its guarantee.

``judge: {}`` turns on both tests with their defaults; naming ``errorRate`` or ``latency`` turns
on only the tests named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from canary.domain import bounds
from canary.domain.durations import parse_duration
from canary.domain.fields import mapping, number
from canary.errors import SpecError


@dataclass(frozen=True)
class ErrorRateJudge:
    """The canary's failed-request rate against the primary's."""

    #: The canary may fail up to (1 + tolerance) times as often as the primary before the test
    #: counts it against the canary: 0.2 tolerates 20% more failures.
    tolerance: float = 0.2
    #: Never roll back while the canary's error rate exceeds the primary's by fewer percentage
    #: points than this, however sure the test is: 0.03% against 0% is certain but harmless.
    min_increase: float = 0.5


@dataclass(frozen=True)
class LatencyJudge:
    """The canary's latency distribution against the primary's, bucket by bucket."""

    #: At every bucket bound, the canary's share of requests slower than it may be up to
    #: (1 + tolerance) times the primary's.
    tolerance: float = 0.5


@dataclass(frozen=True)
class JudgeSpec:
    #: The probability of rolling back a canary no worse than the primary (within the
    #: tolerances), over the whole release, however often the judge looks.
    alpha: float = 0.01
    look_every: timedelta = timedelta(seconds=15)
    error_rate: ErrorRateJudge | None = field(default_factory=ErrorRateJudge)
    latency: LatencyJudge | None = field(default_factory=LatencyJudge)

    @property
    def tests(self) -> int:
        """How many tests share ``alpha`` (each rejects at ``tests / alpha``)."""
        return (self.error_rate is not None) + (self.latency is not None)

    @property
    def evidence_bound(self) -> float:
        """The e-value at which a test rolls the canary back: each of the k tests at k/alpha, so
        together they roll back a canary no worse than the primary with probability at most alpha."""
        return self.tests / self.alpha


def _bounded(raw: Mapping[str, Any], key: str, path: str, bound: bounds.NumberBound, default: float) -> float:
    value = number(raw.get(key, default), f"{path}.{key}")
    if not bound.floor <= value <= bound.ceiling:
        raise SpecError(f"{path}.{key}", f"{value:g} is outside {bound.floor:g}..{bound.ceiling:g} ({bound.why})")
    return value


def parse_judge(raw: object, path: str) -> JudgeSpec | None:
    if raw is None:
        return None
    body = mapping(raw, path)
    both = "errorRate" not in body and "latency" not in body
    error_rate: ErrorRateJudge | None = None
    if both or body.get("errorRate") is not None:
        errors = mapping(body.get("errorRate") or {}, f"{path}.errorRate")
        where = f"{path}.errorRate"
        error_rate = ErrorRateJudge(
            tolerance=_bounded(errors, "tolerance", where, bounds.JUDGE_ERROR_TOLERANCE, ErrorRateJudge.tolerance),
            min_increase=_bounded(errors, "minIncrease", where, bounds.JUDGE_MIN_INCREASE,
                                  ErrorRateJudge.min_increase),
        )
    latency: LatencyJudge | None = None
    if both or body.get("latency") is not None:
        slow = mapping(body.get("latency") or {}, f"{path}.latency")
        latency = LatencyJudge(tolerance=_bounded(slow, "tolerance", f"{path}.latency",
                                                  bounds.JUDGE_LATENCY_TOLERANCE, LatencyJudge.tolerance))
    return JudgeSpec(
        alpha=_bounded(body, "alpha", path, bounds.JUDGE_ALPHA, JudgeSpec.alpha),
        look_every=parse_duration(body.get("lookEvery", "15s"), f"{path}.lookEvery", bounds.JUDGE_LOOK_EVERY),
        error_rate=error_rate,
        latency=latency,
    )
