"""Traffic weights and step arithmetic (stepWeight, stepWeights, maxWeight, promotion steps)."""

from __future__ import annotations

from dataclasses import dataclass

from canary.domain.spec import AnalysisSpec


@dataclass(frozen=True)
class Weights:
    """Percentages of traffic to primary and canary; they always sum to 100."""

    primary: int
    canary: int
    #: The canary also gets the analysis' A/B-matched requests (``analysis.match``) or a mirrored
    #: copy of the requests (``analysis.mirror``), on top of its weight (0 in blue/green).
    experiment: bool = False

    def __post_init__(self) -> None:
        if self.primary < 0 or self.canary < 0 or self.primary + self.canary != 100:
            raise ValueError(f"weights must be non-negative and sum to 100, got {self.primary}/{self.canary}")

    @classmethod
    def canary_at(cls, canary: int) -> Weights:
        return cls(primary=100 - canary, canary=canary)

    def __str__(self) -> str:
        return f"{self.primary}/{self.canary}" + ("+experiment" if self.experiment else "")


ALL_PRIMARY = Weights(primary=100, canary=0)


def max_weight(analysis: AnalysisSpec) -> int:
    if analysis.step_weights:
        return analysis.max_weight or analysis.step_weights[-1]
    return analysis.max_weight or 50


def next_weight(analysis: AnalysisSpec, current: int) -> int | None:
    """The canary weight after one more successful step, or ``None`` once at ``maxWeight``."""
    ceiling = max_weight(analysis)
    if current >= ceiling:
        return None
    if analysis.step_weights:
        return next((w for w in analysis.step_weights if w > current), None)
    step = analysis.step_weight or 0
    if step <= 0:
        return None
    return min(current + step, ceiling)


def next_promotion_weight(analysis: AnalysisSpec, current: int) -> int:
    """Canary weight after one promotion step; without ``stepWeightPromotion`` it drops to 0."""
    if analysis.step_weight_promotion is None:
        return 0
    return max(0, current - analysis.step_weight_promotion)
