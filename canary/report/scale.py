"""Linear scales and round tick values for the report's axes."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LinearScale", "nice_ticks", "padded_range"]


@dataclass(frozen=True)
class LinearScale:
    """Maps ``[lo, hi]`` onto ``[out_lo, out_hi]``; values outside are clamped to the panel."""

    lo: float
    hi: float
    out_lo: float
    out_hi: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        share = 0.0 if span == 0 else (value - self.lo) / span
        share = min(1.0, max(0.0, share))
        return self.out_lo + share * (self.out_hi - self.out_lo)


def padded_range(values: list[float]) -> tuple[float, float]:
    """A range holding every value with some air around it, never empty."""
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
    else:
        pad = (hi - lo) * 0.12
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) inside ``[lo, hi]``."""
    if hi <= lo or most < 2:
        return [lo]
    raw = (hi - lo) / (most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks
