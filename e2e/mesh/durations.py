"""Gateway API durations (GEP-2257), as ``timeouts.request`` and ``timeouts.backendRequest`` use
them: one to four groups of up to five digits, each followed by ``h``, ``m``, ``s`` or ``ms``
(``1h30m``, ``500ms``, ``0s``). The format itself bounds the value: at most four groups of
99999 hours. Zero means "no timeout"."""

from __future__ import annotations

import re

from e2e.mesh.errors import ObjectError

_WHOLE = re.compile(r"(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}")
_GROUP = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_gateway_duration(where: str, raw: object) -> float | None:
    """Seconds, or None when ``raw`` is absent or zero (no timeout)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or _WHOLE.fullmatch(raw) is None:
        raise ObjectError(f"{where}: {raw!r} is not a Gateway API duration (like 10s, 1m30s or 500ms)")
    seconds = sum(int(number) * _SECONDS[unit] for number, unit in _GROUP.findall(raw))
    return seconds or None
