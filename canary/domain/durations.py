"""Go-style durations (``30s``, ``1m30s``, ``500ms``), as Flagger and Prometheus users write them.

Parsing checks the grammar and the field's floor and ceiling (:mod:`canary.domain.bounds`) on
whole microseconds before any ``timedelta`` is built, so no text can overflow one. The CRDs use
the same grammar as their ``pattern`` and the same bounds in CEL rules; with at most five digits
and three decimals per number, Python, cel-python and the API server's Go ``time.ParseDuration``
all read every admitted value as the same whole number of microseconds.
"""

from __future__ import annotations

import re
from datetime import timedelta

from canary.domain.bounds import (
    DURATION_FRACTION_DIGITS,
    DURATION_INT_DIGITS,
    DURATION_MAX_LENGTH,
    DurationBound,
)
from canary.errors import SpecError

_UNIT_MICROSECONDS = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_NUMBER = rf"[0-9]{{1,{DURATION_INT_DIGITS}}}([.][0-9]{{1,{DURATION_FRACTION_DIGITS}}})?"
# Anchored form used by the CRD's pattern and CEL rules as well; tests/crds keeps them in step.
# ``[.]`` rather than ``\.``: the same text then reads the same in YAML, CEL and RE2.
DURATION_PATTERN = rf"^({_NUMBER}(ms|s|m|h))+$"
_WHOLE = re.compile(DURATION_PATTERN)
_PART = re.compile(r"([0-9]+)(?:[.]([0-9]+))?(ms|s|m|h)")
_MICROSECOND = timedelta(microseconds=1)


def range_text(bound: DurationBound) -> str:
    return f"from {format_duration(bound.floor)} to {format_duration(bound.ceiling)}"


def microseconds(text: str) -> int:
    """Exact length of a text that matches :data:`DURATION_PATTERN`, in microseconds."""
    total = 0
    for whole, fraction, unit in _PART.findall(text):
        per_unit = _UNIT_MICROSECONDS[unit]
        # At most three decimals and every unit a multiple of 1000 microseconds: exact.
        total += int(whole) * per_unit + int(fraction or "0") * per_unit // 10 ** len(fraction)
    return total


def parse_duration(text: object, field: str, bound: DurationBound) -> timedelta:
    """Parse ``text`` within ``bound`` or raise :class:`SpecError` naming ``field``, the value,
    the range and an example."""
    allowed = f"write one {range_text(bound)}, e.g. {bound.example}"
    # fullmatch: Python's ``$`` also matches before a final newline, RE2's (the API server's) does not.
    if not isinstance(text, str) or len(text) > DURATION_MAX_LENGTH or not _WHOLE.fullmatch(text):
        shown = repr(text) if not isinstance(text, str) or len(text) <= 64 else repr(text[:64] + "...")
        raise SpecError(
            field,
            f"{shown} is not a duration: {allowed} (numbers of up to {DURATION_INT_DIGITS} digits and "
            f"{DURATION_FRACTION_DIGITS} decimals, each followed by ms, s, m or h; at most "
            f"{DURATION_MAX_LENGTH} characters)",
        )
    length = microseconds(text)
    if length < bound.floor // _MICROSECOND:
        raise SpecError(field, f"{text!r} is shorter than {format_duration(bound.floor)}: {allowed}")
    if length > bound.ceiling // _MICROSECOND:
        raise SpecError(field, f"{text!r} is longer than {format_duration(bound.ceiling)}: {allowed}")
    return timedelta(microseconds=length)


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus range (``90s`` -> ``1m30s``, ``1.5s`` -> ``1s500ms``), to the ms.

    Compound parts keep every number small, so the text stays within :data:`DURATION_PATTERN`
    too (``86399999ms`` would not): the metrics server parses what the controller sends as ``t``.
    """
    total_ms = round(value.total_seconds() * 1000)
    seconds, ms = divmod(total_ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs:
        out += f"{secs}s"
    if ms:
        out += f"{ms}ms"
    return out or "0s"
