"""Timeouts in the Gateway API's duration format, ``^([0-9]{1,5}(h|m|s|ms)){1,4}$`` (GEP-2257).

The format has no fractions and nothing finer than a millisecond, so a ``timedelta`` is written
exactly or refused: a route that waited 1ms where the user asked for 0.5ms would be a silent
change of meaning.
"""

from __future__ import annotations

import re
from datetime import timedelta

from canary.errors import SpecError

GATEWAY_DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
_PATTERN = re.compile(GATEWAY_DURATION_PATTERN)
_MAX_NUMBER = 99_999
_MICROSECOND = timedelta(microseconds=1)
_UNITS_MS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def gateway_duration(value: timedelta, field: str) -> str:
    """``value`` as the Gateway API writes it (``90s`` -> ``1m30s``); :class:`SpecError` naming
    ``field`` when the format cannot say it exactly."""
    micros = value // _MICROSECOND
    if micros < 0:
        raise SpecError(field, "a timeout cannot be negative")
    if micros % 1000:
        shown = f"{micros // 1000}.{micros % 1000:03d}".rstrip("0")
        raise SpecError(field, f"{shown}ms is not a whole number of milliseconds, the finest "
                               "a Gateway API timeout can say; round it to whole milliseconds")
    rest = micros // 1000
    parts = []
    for unit, size in _UNITS_MS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    text = "".join(parts) or "0s"
    # Only the hours can outgrow five digits: the smaller units are each below 60 or 1000.
    if not _PATTERN.fullmatch(text):
        raise SpecError(field, f"{text} is longer than a Gateway API timeout can say ({_MAX_NUMBER}h)")
    return text
