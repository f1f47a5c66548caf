"""How a simulated Pod answers, read from its annotations.

The annotations come from the Deployment's pod template, so shipping a bad version is a
Deployment edit, exactly as in production: the new ReplicaSet's Pods carry the new annotations.

* ``sim.canary.dev/error-rate``: the fraction (0..1, or a percentage such as ``"5%"``) of
  requests answered with the failure status. Default 0.
* ``sim.canary.dev/latency-ms``: milliseconds added to every answer. Default 0.
* ``sim.canary.dev/latency``: the same as a duration (``250ms``, ``1s``, ``1m30s``);
  ``latency-ms`` wins when both are set.
* ``sim.canary.dev/status``: the status code of failed answers (400..599). Default 500.
* ``sim.canary.dev/version``: free text echoed in every answer (which release answered).

A value that cannot be read is reported (the caller logs it) and its default applies, so a typo
never stops a Pod from serving.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

PREFIX = "sim.canary.dev/"
ERROR_RATE = PREFIX + "error-rate"
LATENCY_MS = PREFIX + "latency-ms"
LATENCY = PREFIX + "latency"
STATUS = PREFIX + "status"
#: Not behaviour: a label for people, echoed in the Pod's answers.
VERSION = PREFIX + "version"

# Above an hour nothing is a realistic latency, and an unbounded sleep would pin connections.
_MAX_LATENCY_MS = 3_600_000.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class Behaviour:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    failure_status: int = 500

    def as_json(self) -> dict[str, float | int]:
        return {"errorRate": self.error_rate, "latencyMs": self.latency_ms, "failureStatus": self.failure_status}


DEFAULT = Behaviour()


def parse_behaviour(annotations: Mapping[str, str]) -> tuple[Behaviour, tuple[str, ...]]:
    """The behaviour the annotations ask for, and one message per value that was ignored."""
    problems: list[str] = []

    def read(key: str, parse: Callable[[str], T], default: T) -> T:
        if key not in annotations:
            return default
        try:
            return parse(annotations[key])
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return default

    error_rate = read(ERROR_RATE, parse_error_rate, DEFAULT.error_rate)
    # latency-ms wins over the duration form when both are set.
    latency_ms = (read(LATENCY_MS, parse_latency_ms, DEFAULT.latency_ms) if LATENCY_MS in annotations
                  else read(LATENCY, parse_duration_ms, DEFAULT.latency_ms))
    status = read(STATUS, parse_status, DEFAULT.failure_status)
    return Behaviour(error_rate=error_rate, latency_ms=latency_ms, failure_status=status), tuple(problems)


def parse_error_rate(text: str) -> float:
    raw = text.strip()
    scale = 1.0
    if raw.endswith("%"):
        raw, scale = raw[:-1].strip(), 0.01
    value = _finite(raw, text) * scale
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r} is not a fraction between 0 and 1 (or a percentage)")
    return value


def parse_latency_ms(text: str) -> float:
    value = _finite(text.strip(), text)
    return _bounded_latency(value, text)


def parse_duration_ms(text: str) -> float:
    """A Go-style duration (``250ms``, ``1.5s``, ``1m30s``) in milliseconds."""
    raw = text.strip()
    if raw == "0":
        return 0.0
    if not raw:
        raise ValueError("empty duration")
    position, total = 0, 0.0
    while position < len(raw):
        part = _DURATION_PART.match(raw, position)
        if part is None:
            raise ValueError(f"{text!r} is not a duration such as 250ms or 1s")
        total += float(part[1]) * _UNIT_MS[part[2]]
        position = part.end()
    return _bounded_latency(total, text)


def parse_status(text: str) -> int:
    raw = text.strip()
    if not raw.isdigit():
        raise ValueError(f"{text!r} is not an HTTP status code")
    value = int(raw)
    if not 400 <= value <= 599:
        raise ValueError(f"{value} is not an error status (400..599)")
    return value


def _finite(raw: str, original: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{original!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{original!r} is not a finite number")
    return value


def _bounded_latency(value: float, original: str) -> float:
    if not 0.0 <= value <= _MAX_LATENCY_MS:
        raise ValueError(f"{original!r} is not a latency between 0 and 1h")
    return value
