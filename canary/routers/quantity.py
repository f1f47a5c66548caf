"""Backend weights as exact numbers, and relative weights as percentages.

Weights in TrafficSplit and HTTPRoute are relative: a backend's share is its weight over the sum.
Objects written by meshes or people use any total and, for SMI v1alpha1, any Kubernetes quantity
spelling, so reading parses them exactly and only rounds once, at the end, to percentages.

``kubernetes.utils.quantity.parse_quantity`` does the suffix arithmetic. It is looser than the
API machinery, because it hands the number to :class:`~decimal.Decimal`, which also takes
``"NaN"``, ``"Infinity"``, ``"1_000"`` and surrounding blanks; text is therefore checked against
the Kubernetes grammar first, and every value is bounded and rounded to nano-units (the finest
precision a Go ``resource.Quantity`` keeps) before exact arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from kubernetes.utils.quantity import parse_quantity

from canary.routers.base import Weights

# The kubernetes package has no type hints; this states what parse_quantity returns for text.
_parse_quantity: Callable[[str], Decimal] = parse_quantity

# Sign, digits with an optional point, then one of: a decimal exponent, an SI suffix, a binary
# suffix. A lone "E" is the exa suffix, as in Go.
_QUANTITY = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")
# Long enough for any hand-written weight, short enough that nothing costly reaches Decimal.
_MAX_TEXT = 64
# Far above any real weight (Gateway API caps at 1,000,000); keeps nano-rounding within
# Decimal's default 28-digit precision.
_MAX_WEIGHT = Decimal(10) ** 15
_NANO = Decimal("1e-9")


def parse_weight(value: object) -> Fraction | None:
    """``value`` as an exact non-negative weight, or ``None`` when it is not one.

    Accepts JSON integers and floats and Kubernetes quantity strings (``"1"``, ``"500m"``,
    ``"0.5"``, ``"1k"``, ``"1e3"``, ``"1Ki"``). Booleans are not numbers here, although Python
    says they are ints.
    """
    number: Decimal
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > _MAX_TEXT or _QUANTITY.fullmatch(value) is None:
            return None
        try:
            number = _parse_quantity(value)
        except ValueError:
            return None
    else:
        return None
    if not number.is_finite() or number < 0 or number > _MAX_WEIGHT:
        return None
    return Fraction(number.quantize(_NANO, rounding=ROUND_CEILING))


def to_percentages(primary: Fraction, canary: Fraction) -> Weights | None:
    """Relative weights as percentages summing to 100; ``None`` when both are zero.

    The canary's share is rounded to the nearest percent and the primary takes the rest, so 1000
    and 500 read as 67/33. Ties go to the even percent: as 100 is even, that rounds both sides
    alike, so swapping the inputs swaps the result (half-up would favour the canary).
    """
    total = primary + canary
    if total <= 0:
        return None
    return Weights.canary_at(round(canary * 100 / total))


def pair_percentages(
    backends: Iterable[tuple[object, Fraction]], *, primary: str, canary: str
) -> Weights | None:
    """Percentages of a backend list that names exactly ``primary`` and ``canary``, once each.

    Any other shape (a missing, repeated or unknown backend) means someone else owns or edited
    the object, so its weights are not ours to interpret: ``None``.
    """
    found: dict[str, Fraction] = {}
    for name, weight in backends:
        if not isinstance(name, str) or name not in (primary, canary) or name in found:
            return None
        found[name] = weight
    if len(found) != 2:
        return None
    return to_percentages(found[primary], found[canary])
