"""Go-style durations (``30s``, ``1m30s``, ``500ms``), as Flagger and Prometheus users write them."""

from __future__ import annotations

import re
from datetime import timedelta

from canary.errors import SpecError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
# Anchored form used by the CRD's pattern as well; keep the two in step.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_WHOLE = re.compile(DURATION_PATTERN)


def parse_duration(text: str, field: str) -> timedelta:
    """Parse ``text`` or raise :class:`SpecError` naming ``field``."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise SpecError(field, f"{text!r} is not a duration; write it like 30s, 1m or 1m30s")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))
    if seconds <= 0:
        raise SpecError(field, f"{text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus range (``90s`` -> ``1m30s``); PromQL accepts this form."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms % 1000:
        return f"{total_ms}ms"
    seconds = total_ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or not out:
        out += f"{secs}s"
    return out
