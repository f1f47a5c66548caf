"""Backend weights as exact fractions, read the way a mesh reads them.

TrafficSplit weights are Kubernetes quantities in v1alpha1 (``"500m"`` is one half, ``"1"`` and
``"1000m"`` are one) and integers from v1alpha2 on. The mesh-shipped CRDs convert nothing between
versions, so an object written through v1alpha1 reads back with its quantity through v1alpha2:
every TrafficSplit weight is therefore parsed as "an integer or a quantity". HTTPRoute weights
are int32s bounded by the Gateway API to 0..1,000,000.

Weights are relative: a backend's share is its weight over the sum of the rule's weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

#: The Gateway API's bound on an HTTPRoute backendRef weight.
MAX_HTTPROUTE_WEIGHT = 1_000_000
#: Far above any weight a person or a controller writes; keeps arithmetic on sane numbers.
_MAX_WEIGHT = Fraction(10**15)
_MAX_TEXT = 64

# Go's resource.Quantity grammar: a signed decimal, then an SI suffix, a binary suffix or a
# decimal exponent. The library's parser is looser (Python's Decimal takes "1_000", "1 " and
# "Infinity"), so the grammar is checked here and the arithmetic left to the library.
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,2}|[KMGTPE]i|[numkMGTPE])?")

# The kubernetes package has no type hints; this is what parse_quantity returns for text.
_parse_quantity: Callable[[str], Decimal] = _untyped_parse_quantity

class WeightError(ValueError):
    """A weight the mesh cannot use; the message quotes the value and says why."""


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes quantity string as an exact number (``"500m"`` → 1/2)."""
    if len(text) > _MAX_TEXT:
        raise WeightError(f"weight {text[:_MAX_TEXT]!r}... is too long to be a quantity")
    if _QUANTITY.fullmatch(text) is None:
        raise WeightError(f"weight {text!r} is not a Kubernetes quantity (e.g. 1, 500m, 0.5)")
    try:
        # The client library's parser (the one the controller uses too) does the suffix
        # arithmetic exactly, in Decimal; Fraction keeps it exact from there on.
        return Fraction(_parse_quantity(text))
    except ValueError as exc:
        raise WeightError(f"weight {text!r} is not a Kubernetes quantity (e.g. 1, 500m, 0.5)") from exc


def parse_split_weight(value: object) -> Fraction:
    """A TrafficSplit backend weight (any version): a non-negative integer, float or quantity."""
    number: Fraction
    if isinstance(value, bool):
        raise WeightError(f"weight {value!r} is a boolean, not a number")
    if isinstance(value, int):
        number = Fraction(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise WeightError(f"weight {value!r} is not a finite number")
        number = Fraction(repr(value))
    elif isinstance(value, str):
        number = parse_quantity(value)
    elif value is None:
        raise WeightError("weight is missing")
    else:
        raise WeightError(f"weight {value!r} is a {type(value).__name__}, not a number or quantity")
    _check_range(value, number)
    return number


def parse_httproute_weight(value: object) -> Fraction:
    """An HTTPRoute backendRef weight: an integer in 0..1,000,000; absent means 1."""
    if value is None:
        return Fraction(1)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WeightError(f"backendRef weight {value!r} is not an integer")
    if not 0 <= value <= MAX_HTTPROUTE_WEIGHT:
        raise WeightError(f"backendRef weight {value} is outside 0..{MAX_HTTPROUTE_WEIGHT}")
    return Fraction(value)


def _check_range(original: object, number: Fraction) -> None:
    if number < 0:
        raise WeightError(f"weight {original!r} is negative")
    if number > _MAX_WEIGHT:
        raise WeightError(f"weight {original!r} is unreasonably large")


def weight_json(weight: Fraction) -> int | float:
    """A weight for JSON: an integer when it is one (``80``), else a float (``0.8``)."""
    if weight.denominator == 1:
        return int(weight)
    return float(weight)
