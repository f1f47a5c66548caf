"""Plain-text views of a Canary for people on call. Pure: objects and ``now`` in, text out.

The input is the Canary exactly as the API server returns it (a mapping with ``metadata``,
``spec``, ``status``). A status the controller has not written yet, or a spec that no longer
parses, still renders: this is the view people open when something is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from canary.domain.spec import AnalysisSpec, parse_analysis
from canary.domain.status import Annotation, CanaryStatus, CheckKind, CheckResult, Condition, format_time
from canary.errors import SpecError

__all__ = [
    "canary_json",
    "format_age",
    "format_bounds",
    "format_number",
    "progress_bar",
    "qualified_name",
    "read_status",
    "render_canaries",
    "render_canary",
    "summary_line",
    "table",
]

_LABEL_WIDTH = 18
_INDENT = "  "


def qualified_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def read_status(obj: Mapping[str, Any]) -> CanaryStatus:
    """The Canary's status; an unreadable one reads as empty rather than hiding the Canary."""
    try:
        return CanaryStatus.from_dict(obj.get("status"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return CanaryStatus()


def progress_bar(weight: int, width: int = 10) -> str:
    """``[#####.....] 50%``: the share of traffic the canary receives."""
    pct = min(100, max(0, weight))
    filled = pct * width // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {pct}%"


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def format_bounds(value: float | None, low: float | None, high: float | None) -> str:
    """``99.2 >= 99``, ``512 <= 500``, ``1 <= 3 <= 5``; ``-`` stands for a missing value."""
    shown = "-" if value is None else format_number(value)
    if low is not None and high is not None:
        return f"{format_number(low)} <= {shown} <= {format_number(high)}"
    if low is not None:
        return f"{shown} >= {format_number(low)}"
    if high is not None:
        return f"{shown} <= {format_number(high)}"
    return shown


def format_age(delta: timedelta) -> str:
    """The two largest units, as kubectl shows ages: ``45s``, ``3m20s``, ``2h5m``, ``3d4h``."""
    seconds = max(0, int(delta.total_seconds()))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for suffix, size in units:
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{suffix}")
        if len(parts) == 2:
            break
    if not parts:
        return "0s"
    if len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, without trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


@dataclass(frozen=True)
class _Analysis:
    threshold: int | None
    max_weight: int | None
    iterations: int | None
    error_limit: int | None = None
    no_data_limit: int | None = None


def _analysis(obj: Mapping[str, Any]) -> _Analysis:
    raw = (obj.get("spec") or {}).get("analysis")
    if not isinstance(raw, Mapping):
        return _Analysis(None, None, None)
    try:
        parsed: AnalysisSpec = parse_analysis(raw)
    except SpecError:
        return _Analysis(None, None, None)
    return _Analysis(parsed.threshold, None if parsed.blue_green else parsed.max_weight,
                     parsed.iterations if parsed.blue_green else None,
                     parsed.consecutive_error_limit, parsed.consecutive_no_data_limit)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    return f"{format_time(value)} ({format_age(now - value)} ago)"


def _ratio(count: int, limit: int | None) -> str:
    return f"{count}/{limit}" if limit is not None else str(count)


def _on_call(obj: Mapping[str, Any], status: CanaryStatus) -> list[str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    shown = []
    for annotation in Annotation:
        value = annotations.get(annotation.value)
        if value is None:
            continue
        handled = status.handled_annotations.get(annotation.short) == value
        shown.append(f"{annotation.value}={value} ({'handled' if handled else 'pending'})")
    return shown


def _check_rows(checks: Sequence[CheckResult]) -> list[list[str]]:
    return [
        [
            c.name,
            c.kind.value,
            format_bounds(c.value, c.min, c.max),
            c.verdict.value,
            "-" if c.samples is None else format_number(c.samples),
            c.message,
        ]
        for c in checks
    ]


def _judge_rows(checks: Sequence[CheckResult]) -> list[list[str]]:
    def pair(canary: float | None, primary: float | None) -> str:
        return f"{'-' if canary is None else format_number(canary)} / {'-' if primary is None else format_number(primary)}"
    return [
        [
            c.name.removeprefix("judge/"),
            pair(c.value, c.primary_value),
            pair(c.samples, c.primary_samples),
            "-" if c.evidence is None else f"{c.evidence:.3g} / {'-' if c.evidence_bound is None else f'{c.evidence_bound:.3g}'}",
            c.verdict.value,
            c.message,
        ]
        for c in checks
    ]


def _condition_rows(conditions: Sequence[Condition]) -> list[list[str]]:
    return [[c.type.value, "True" if c.status else "False", c.reason, c.message] for c in conditions]


def render_canary(obj: Mapping[str, Any], now: datetime) -> str:
    """The full view of one Canary, as ``canary status NAME`` prints it."""
    status = read_status(obj)
    analysis = _analysis(obj)
    phase = status.phase.value if status.phase else "Unknown (no status from the controller yet)"
    weight = progress_bar(status.canary_weight)
    if analysis.max_weight is not None:
        weight += f" (max {analysis.max_weight}%)"

    fields: list[tuple[str, str]] = [
        ("Phase", phase),
        ("Weight", weight),
        ("Failed checks", _ratio(status.failed_checks, analysis.threshold)),
        ("Iterations", _ratio(status.iterations, analysis.iterations)),
    ]
    # Shown only while a hold is under way: which one it is, and how close to counting.
    if status.consecutive_errors:
        fields.append(("Metrics outage", f"{_ratio(status.consecutive_errors, analysis.error_limit)} ticks in a row"))
    if status.consecutive_no_data:
        fields.append(("No data", f"{_ratio(status.consecutive_no_data, analysis.no_data_limit)} ticks in a row"))
    if status.last_applied_spec or status.last_promoted_spec:
        fields.append(("Revision", f"{status.last_applied_spec or '-'} (primary: {status.last_promoted_spec or '-'})"))
    fields.append(("Last transition", _when(status.last_transition_time, now)))
    if status.last_analysis_time is not None:
        fields.append(("Last analysis", _when(status.last_analysis_time, now)))
    if status.message:
        fields.append(("Message", status.message))
    on_call = _on_call(obj, status)
    if on_call:
        fields.append(("On-call", ", ".join(on_call)))

    lines = [f"Canary {qualified_name(obj)}"]
    lines += [f"{_INDENT}{(label + ':').ljust(_LABEL_WIDTH)}{value}" for label, value in fields]
    checks = [c for c in status.checks if c.kind is not CheckKind.JUDGE]
    judged = [c for c in status.checks if c.kind is CheckKind.JUDGE]
    if checks:
        lines.append(f"{_INDENT}Checks:")
        headers = ["NAME", "KIND", "VALUE", "VERDICT", "SAMPLES", "MESSAGE"]
        lines += [_INDENT * 2 + line for line in table(headers, _check_rows(checks))]
    elif not judged:
        lines.append(f"{_INDENT}Checks:           none yet")
    if judged:
        # The judge compares the versions: each number is shown for the canary, then the primary.
        lines.append(f"{_INDENT}Judge (canary / primary, this step; evidence over the run / needed to roll back):")
        headers = ["TEST", "VALUE", "REQUESTS", "EVIDENCE", "VERDICT", "MESSAGE"]
        lines += [_INDENT * 2 + line for line in table(headers, _judge_rows(judged))]
    if status.conditions:
        lines.append(f"{_INDENT}Conditions:")
        lines += [_INDENT * 2 + line for line in table(["TYPE", "STATUS", "REASON", "MESSAGE"],
                                                       _condition_rows(status.conditions))]
    else:
        lines.append(f"{_INDENT}Conditions:       none")
    return "\n".join(lines)


def render_canaries(objs: Sequence[Mapping[str, Any]], now: datetime) -> str:
    ordered = sorted(objs, key=qualified_name)
    return "\n\n".join(render_canary(o, now) for o in ordered)


def summary_line(obj: Mapping[str, Any]) -> str:
    """One line per change, as ``canary wait`` prints progress."""
    status = read_status(obj)
    analysis = _analysis(obj)
    phase = status.phase.value if status.phase else "Unknown"
    line = (f"{qualified_name(obj)} {phase} {progress_bar(status.canary_weight)}"
            f" failed checks {_ratio(status.failed_checks, analysis.threshold)}")
    if status.message:
        line += f": {status.message}"
    return line


def canary_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What ``-o json`` prints per Canary: its identity and the status as the controller wrote it."""
    meta = obj.get("metadata") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items()
                        if k in Annotation._value2member_map_},
        "status": obj.get("status") or {},
    }
